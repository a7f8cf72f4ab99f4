"""`match_finding_triggers`: which playbooks a tick's findings set off. Pure."""

from __future__ import annotations

from agents import revise
from agents.detection import Finding, FindingKind
from agents.playbook import Playbook, load_playbook, match_finding_triggers
from tests.workflows.conftest import make_simulator

BELIEFS = revise(None, make_simulator("hidden_downstream.yaml").snapshot())


def book(name: str, target: str, kinds: str, schedule: bool = False) -> Playbook:
    extra = '\n  - {type: schedule, cron: "*/15 * * * *", timezone: UTC}' if schedule else ""
    text = f"""
name: {name}
description: d
version: 1
owner: sre
target: {target}
triggers:
  - {{type: finding, kinds: {kinds}}}{extra}
steps:
  - action: restart
    verify: {{expect: "replicas >= 1", within: 1m}}
limits: {{max_duration: 10m, max_nodes: 3}}
"""
    return load_playbook(text, f"{name}.yaml", name=name)


def finding(kind: FindingKind, node: str | None) -> Finding:
    return Finding(kind=kind, node=node, message=f"{kind.value} on {node}")


def test_a_finding_of_a_named_kind_on_a_selected_node_sets_off_the_playbook() -> None:
    books = [book("critical-only", "{tags: {tier: critical}}", "[saturated, at_risk]")]
    found = [finding(FindingKind.SATURATED, "gateway"), finding(FindingKind.AT_RISK, "checkout")]
    (match,) = match_finding_triggers(books, found, BELIEFS)
    assert match.playbook == "critical-only"
    assert match.nodes == ("checkout", "gateway")
    assert match.reason() == "at_risk, saturated on checkout, gateway"


def test_other_kinds_unselected_nodes_and_nodeless_findings_set_off_nothing() -> None:
    books = [book("standard-only", "{tags: {tier: standard}}", "[saturated]")]
    found = [
        finding(FindingKind.SATURATED, "gateway"),  # critical: not selected
        finding(FindingKind.AT_RISK, "catalog"),  # selected, but not a named kind
        finding(FindingKind.SATURATED, None),
        finding(FindingKind.SATURATED, "no-such-node"),
    ]
    assert match_finding_triggers(books, found, BELIEFS) == []


def test_skipped_and_schedule_only_playbooks_are_not_matched() -> None:
    found = [finding(FindingKind.SATURATED, "gateway")]
    cooling = book("cooling", "{nodes: [gateway]}", "[saturated]", schedule=True)
    assert match_finding_triggers([cooling], found, BELIEFS, skip={"cooling"}) == []
    assert [m.playbook for m in match_finding_triggers([cooling], found, BELIEFS)] == ["cooling"]
