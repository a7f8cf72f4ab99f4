"""The typed contract: inputs are validated before any engine sees them; decisions are checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from controller.adapters.policy import OpaPolicyGate, RegorusPolicyGate, make_policy_gate
from controller.core.settings import Settings
from twin.contract import Node
from workflows.policy import (
    AffectedNode,
    PolicyGate,
    SafetyDecision,
    SafetyInput,
    action_node,
    deny_decision,
    refuse_approval,
)

from .conftest import CASES, POLICIES


def _input() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CASES / "safety_small_scale_auto.json").read_text())["input"]
    return doc


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("now",), "2026-11-21T22:00:00", "now"),
        (("proposal", "blast_radius"), 1.5, "blast_radius"),
        (("proposal", "actions"), [], "actions"),
        (("proposal", "actions"), [{"type": "delete", "node": "x"}], "actions"),
        (("requester", "kind"), "robot", "kind"),
        (("snapshot_age_seconds",), -1, "snapshot_age_seconds"),
        (("proposal", "nodes"), [{"id": "a", "replicas": 1, "min_replicas": 3, "max_replicas": 2}], "min_replicas"),
        (("history",), [{"at": "2026-11-21T21:00:00Z", "node": "a", "action_type": "scale", "plan_hash": "p",
                         "outcome": "maybe"}], "outcome"),
    ],
)  # fmt: skip
def test_invalid_inputs_are_rejected_naming_the_field(path: tuple[str, ...], value: Any, where: str) -> None:
    doc = _input()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        SafetyInput.model_validate(doc)
    assert where in str(info.value)


def test_duplicate_nodes_are_rejected() -> None:
    doc = _input()
    doc["proposal"]["nodes"] *= 2
    with pytest.raises(ValidationError, match="listed twice"):
        SafetyInput.model_validate(doc)


async def test_invalid_document_is_denied_by_the_gate_without_evaluation() -> None:
    doc = _input()
    doc["now"] = "yesterday"
    gate = RegorusPolicyGate.from_dir(POLICIES)
    decision = await gate.evaluate_document("safety", doc)
    gate.close()
    assert isinstance(decision, SafetyDecision)
    assert decision.allow is False
    assert decision.deny[0].code == "invalid_input"
    assert decision.deny[0].details["errors"][0]["loc"] == ["now"]


def test_input_serializes_to_what_rego_reads() -> None:
    model = SafetyInput.model_validate(_input())
    dumped = model.model_dump(mode="json")
    assert dumped["now"] == "2026-11-21T22:00:00Z"
    assert dumped["proposal"]["actions"][0] == {"type": "scale", "node": "checkout", "replicas": 8}


def test_affected_node_from_twin_reads_tier_and_team_from_tags() -> None:
    node = Node(
        id="gw", replicas=2, capacity_per_replica=10.0, max_replicas=5, tags={"tier": "critical", "team": "edge"}
    )
    affected = AffectedNode.from_twin(node)
    assert (affected.tier, affected.team, affected.max_replicas) == ("critical", "edge", 5)


def test_action_node_names_the_changed_node() -> None:
    model = SafetyInput.model_validate(_input())
    assert action_node(model.proposal.actions[0]) == "checkout"


def test_fail_closed_helpers() -> None:
    denied = deny_decision("x", "because", bundle_revision="r", engine="e")
    assert (denied.allow, denied.auto_approve, denied.risk, denied.deny[0].code) == (False, False, "high", "x")
    refused = refuse_approval("y", "no")
    assert (refused.counts, refused.quorum_met, refused.reasons[0].code) == (False, False, "y")


def test_factory_picks_the_engine_from_settings() -> None:
    in_process = make_policy_gate(Settings(policies_dir=POLICIES))
    assert isinstance(in_process, RegorusPolicyGate) and isinstance(in_process, PolicyGate)
    in_process.close()
    remote = make_policy_gate(
        Settings(policies_dir=POLICIES, opa_url="http://127.0.0.1:8181", policy_timeout_seconds=0.5)
    )
    assert isinstance(remote, OpaPolicyGate) and remote.timeout_seconds == 0.5
    assert remote.bundle_sha256 == in_process.bundle_sha256
