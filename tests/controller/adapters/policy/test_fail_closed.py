"""Every way the policy engine can fail ends in a deny that names the failure, and is logged."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import structlog

from controller.adapters.policy import OpaPolicyGate, RegorusPolicyGate, load_bundle
from workflows.policy import ApprovalInput, SafetyDecision, SafetyInput

from .conftest import CASES, MakeBundle


def _case_input(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CASES / f"{name}.json").read_text())["input"]
    return doc


SAFETY_IN = SafetyInput.model_validate(_case_input("safety_small_scale_auto"))
APPROVAL_IN = ApprovalInput.model_validate(_case_input("approval_counts_low"))


def _gate(make_bundle: MakeBundle, source: str, timeout: float = 2.0) -> RegorusPolicyGate:
    return RegorusPolicyGate(
        load_bundle(make_bundle({"twinops/safety/safety.rego": source})),
        timeout_seconds=timeout,
    )


def _assert_denied(decision: SafetyDecision, code: str) -> None:
    assert decision.allow is False
    assert decision.auto_approve is False
    assert [r.code for r in decision.deny] == [code]
    assert decision.bundle_revision == "test-1"
    assert len(decision.bundle_sha256) == 64


async def test_rego_that_does_not_compile_denies(make_bundle: MakeBundle) -> None:
    gate = _gate(make_bundle, "package twinops.safety\nimport rego.v1\ndecision := {")
    with structlog.testing.capture_logs() as logs:
        decision = await gate.evaluate_safety(SAFETY_IN)
    _assert_denied(decision, "policy_error")
    assert "twinops/safety/safety.rego" in decision.deny[0].msg
    assert any(e["event"] == "policy.fail_closed" and e["code"] == "policy_error" for e in logs)
    gate.close()


async def test_missing_rule_denies(make_bundle: MakeBundle) -> None:
    gate = _gate(make_bundle, "package twinops.safety\nimport rego.v1\nsomething_else := true\n")
    _assert_denied(await gate.evaluate_safety(SAFETY_IN), "policy_rule_missing")
    gate.close()


async def test_missing_package_denies(make_bundle: MakeBundle) -> None:
    gate = _gate(make_bundle, "package twinops.other\nimport rego.v1\ndecision := {}\n")
    decision = await gate.evaluate_safety(SAFETY_IN)
    assert decision.allow is False
    assert decision.deny[0].code in {"policy_rule_missing", "policy_undefined"}
    gate.close()


async def test_undefined_decision_denies(make_bundle: MakeBundle) -> None:
    gate = _gate(make_bundle, 'package twinops.safety\nimport rego.v1\ndecision := {"allow": true} if input.nope\n')
    _assert_denied(await gate.evaluate_safety(SAFETY_IN), "policy_undefined")
    gate.close()


_OK: dict[str, Any] = {
    "allow": True, "deny": [], "risk": "low", "required_approvals": 0, "approver_groups": [], "auto_approve": True,
}  # fmt: skip
_REASON = [{"code": "x", "msg": "y"}]
MALFORMED: dict[str, Any] = {
    "string": "yes",
    "allow-as-string": {**_OK, "allow": "true"},
    "unknown-risk": {**_OK, "risk": "none"},
    "negative-approvals": {**_OK, "required_approvals": -1, "auto_approve": False},
    "fractional-approvals": {**_OK, "required_approvals": 1.5, "auto_approve": False},
    "allow-with-reasons": {**_OK, "deny": _REASON, "auto_approve": False},
    "deny-without-reason": {**_OK, "allow": False, "auto_approve": False},
    "auto-approve-denied": {**_OK, "allow": False, "deny": _REASON},
    "missing-fields": {"allow": True},
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_decision_denies(make_bundle: MakeBundle, body: Any) -> None:
    gate = _gate(make_bundle, f"package twinops.safety\nimport rego.v1\ndecision := {json.dumps(body)}\n")
    _assert_denied(await gate.evaluate_safety(SAFETY_IN), "policy_malformed_decision")
    gate.close()


# Coherent in each field's type, contradictory as a whole: the gate must not take either half.
CONTRADICTORY_SAFETY: dict[str, Any] = {
    "auto-approve-needing-approvals": {**_OK, "required_approvals": 2},
    "allowed-manual-needing-nobody": {**_OK, "auto_approve": False, "required_approvals": 0},
}


@pytest.mark.parametrize("body", list(CONTRADICTORY_SAFETY.values()), ids=list(CONTRADICTORY_SAFETY))
async def test_self_contradicting_safety_decision_denies(make_bundle: MakeBundle, body: Any) -> None:
    gate = _gate(make_bundle, f"package twinops.safety\nimport rego.v1\ndecision := {json.dumps(body)}\n")
    with structlog.testing.capture_logs() as logs:
        decision = await gate.evaluate_safety(SAFETY_IN)
    _assert_denied(decision, "policy_malformed_decision")
    assert "contradicts itself" in decision.deny[0].msg and decision.deny[0].details["contradictions"]
    assert any(e.get("code") == "policy_malformed_decision" for e in logs)
    gate.close()


_MET: dict[str, Any] = {
    "counts": True, "quorum_met": True, "reasons": [], "pending": [], "approvals_counted": 1, "still_needed": 0,
}  # fmt: skip
_PENDING = [{"code": "quorum_not_met", "msg": "1 more"}]
CONTRADICTORY_APPROVAL: dict[str, Any] = {
    "met-with-pending": {**_MET, "pending": _PENDING},
    "met-with-still-needed": {**_MET, "still_needed": 1},
    "met-with-pending-and-still-needed": {**_MET, "pending": _PENDING, "still_needed": 1, "approvals_counted": 1},
    "met-without-counting": {**_MET, "counts": False, "reasons": [{"code": "duplicate_approver", "msg": "x"}]},
    "counts-with-reasons": {**_MET, "reasons": [{"code": "expired", "msg": "x"}]},
    "refused-without-reason": {**_MET, "counts": False, "quorum_met": False, "pending": _PENDING},
    "counts-but-none-counted": {**_MET, "approvals_counted": 0},
    "negative-still-needed": {**_MET, "quorum_met": False, "still_needed": -1, "pending": _PENDING},
    "needed-but-nothing-pending": {**_MET, "quorum_met": False, "still_needed": 1},
    "counts-unmet-nothing-pending": {**_MET, "quorum_met": False},
    "quorum-as-string": {**_MET, "quorum_met": "true"},
}


def _approval_gate(make_bundle: MakeBundle, body: Any) -> RegorusPolicyGate:
    source = f"package twinops.approval\nimport rego.v1\ndecision := {json.dumps(body)}\n"
    return RegorusPolicyGate(load_bundle(make_bundle({"twinops/approval/approval.rego": source})), processes=1)


def test_the_coherent_approval_fixture_is_accepted() -> None:
    from controller.adapters.policy.consistency import contradictions
    from workflows.policy import ApprovalDecision

    assert contradictions(ApprovalDecision.model_validate(_MET)) == []


async def test_a_coherent_approval_decision_is_taken(make_bundle: MakeBundle) -> None:
    gate = _approval_gate(make_bundle, _MET)
    decision = await gate.evaluate_approval(APPROVAL_IN)
    gate.close()
    assert decision.counts is True and decision.quorum_met is True


@pytest.mark.parametrize("body", list(CONTRADICTORY_APPROVAL.values()), ids=list(CONTRADICTORY_APPROVAL))
async def test_self_contradicting_approval_decision_is_refused(make_bundle: MakeBundle, body: Any) -> None:
    gate = _approval_gate(make_bundle, body)
    decision = await gate.evaluate_approval(APPROVAL_IN)
    gate.close()
    assert decision.counts is False and decision.quorum_met is False
    assert [r.code for r in decision.reasons] == ["policy_malformed_decision"]
    assert decision.bundle_revision == "test-1"


async def test_a_self_contradicting_answer_from_opa_is_refused() -> None:
    fake = _FakeOpa({"result": CONTRADICTORY_APPROVAL["met-with-pending"]})
    gate = OpaPolicyGate("http://opa:8181", client=fake)
    decision = await gate.evaluate_approval(APPROVAL_IN)
    assert decision.quorum_met is False and [r.code for r in decision.reasons] == ["policy_malformed_decision"]


SLOW = """package twinops.safety
import rego.v1
n := input.proposal.fleet_replicas
burn := count([1 | some i in numbers.range(1, n); some j in numbers.range(1, 1000); i * j > 5])
decision := {"allow": true, "deny": [], "risk": "low", "required_approvals": 0, "approver_groups": [],
  "auto_approve": burn > 0}
"""


async def test_timeout_denies_and_the_gate_recovers(make_bundle: MakeBundle) -> None:
    gate = _gate(make_bundle, SLOW, timeout=0.05)
    slow = SAFETY_IN.model_copy(update={"proposal": SAFETY_IN.proposal.model_copy(update={"fleet_replicas": 400})})
    with structlog.testing.capture_logs() as logs:
        decision = await gate.evaluate_safety(slow)
    _assert_denied(decision, "policy_timeout")
    assert any(e.get("code") == "policy_timeout" for e in logs)
    fast = SAFETY_IN.model_copy(update={"proposal": SAFETY_IN.proposal.model_copy(update={"fleet_replicas": 1})})
    warm = await gate.evaluate_safety(fast)  # first call on the replacement thread may pay the parse
    decision = warm if warm.allow else await gate.evaluate_safety(fast)
    assert decision.allow is True
    gate.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_opa_denies_safety_and_approval() -> None:
    gate = OpaPolicyGate(f"http://127.0.0.1:{_closed_port()}", bundle_revision="r", bundle_sha256="0" * 64)
    with structlog.testing.capture_logs() as logs:
        safety = await gate.evaluate_safety(SAFETY_IN)
        approval = await gate.evaluate_approval(APPROVAL_IN)
    await gate.aclose()
    assert safety.allow is False and [r.code for r in safety.deny] == ["policy_unreachable"]
    assert approval.counts is False and approval.quorum_met is False
    assert [r.code for r in approval.reasons] == ["policy_unreachable"]
    assert {e["code"] for e in logs if e["event"] == "policy.fail_closed"} == {"policy_unreachable"}
    assert safety.engine == "opa"


class _FakeOpa:
    def __init__(self, body: Any, *, delay: float = 0.0) -> None:
        self.body, self.delay = body, delay
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []

    async def query_rule(self, input_data: dict[str, Any], package_path: str, rule_name: str | None = None) -> Any:
        import asyncio

        self.calls.append((package_path, rule_name, input_data))
        await asyncio.sleep(self.delay)
        return self.body


async def test_opa_gate_queries_the_decision_path_and_stamps_the_bundle() -> None:
    result = {
        "allow": True,
        "deny": [],
        "risk": "low",
        "required_approvals": 0,
        "approver_groups": ["sre"],
        "auto_approve": True,
    }
    fake = _FakeOpa({"result": result})
    gate = OpaPolicyGate("http://opa:8181", bundle_revision="r1", bundle_sha256="a" * 64, client=fake)
    decision = await gate.evaluate_safety(SAFETY_IN)
    assert decision.allow is True and decision.bundle_revision == "r1" and decision.engine == "opa"
    package, rule, sent = fake.calls[0]
    assert (package, rule) == ("twinops/safety", "decision")
    assert sent["now"] == "2026-11-21T22:00:00Z"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "policy_undefined"),
        ({"result": None}, "policy_malformed_decision"),
        ({"result": {"allow": 1}}, "policy_malformed_decision"),
        (["x"], "policy_malformed_decision"),
    ],
)  # fmt: skip
async def test_opa_gate_fails_closed_on_bad_answers(body: Any, code: str) -> None:
    gate = OpaPolicyGate("http://opa:8181", client=_FakeOpa(body))
    decision = await gate.evaluate_safety(SAFETY_IN)
    assert decision.allow is False and [r.code for r in decision.deny] == [code]


async def test_opa_gate_times_out() -> None:
    gate = OpaPolicyGate("http://opa:8181", timeout_seconds=0.05, client=_FakeOpa({"result": {}}, delay=1.0))
    decision = await gate.evaluate_safety(SAFETY_IN)
    assert [r.code for r in decision.deny] == ["policy_timeout"]


@pytest.mark.parametrize("url", ["opa:8181", "ftp://opa", "http://opa:8181/v1/data"])
def test_opa_gate_rejects_a_bad_url(url: str) -> None:
    from controller.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="TWINOPS_OPA_URL"):
        OpaPolicyGate(url)
