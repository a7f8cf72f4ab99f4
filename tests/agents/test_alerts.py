"""Alerts are evidence: in the belief, as findings, in the rationale; never a reason to act by themselves."""

from __future__ import annotations

from datetime import timedelta

from agents import AgentState, AlertNote, Desires, FindingKind, decide
from agents.proposal import plan_nodes
from tests.agents.conftest import T0, hidden_downstream, node, snap


def _alert(node_id: str, name: str = "HighUtilization", fingerprint: str = "f1") -> AlertNote:
    return AlertNote(
        fingerprint=fingerprint,
        name=name,
        node=node_id,
        starts_at=T0 - timedelta(minutes=2),
        received_at=T0,
        severity="page",
        summary=f"{node_id} is running hot",
    )


def test_an_alert_on_the_target_is_in_its_belief_its_findings_and_the_rationale() -> None:
    decision = decide(AgentState(), hidden_downstream(), Desires(), alerts=[_alert("api")])
    assert decision.proposals
    proposal = next(p for p in decision.proposals if "api" in plan_nodes(p.plan))
    alerts = [f for f in proposal.findings if f.kind is FindingKind.ALERT]
    assert [f.node for f in alerts] == ["api"]
    assert "HighUtilization firing on api since 21:58:00 UTC, severity page: api is running hot" in alerts[0].message
    assert "Paged: alertmanager alert HighUtilization firing on api" in proposal.rationale
    api = decision.beliefs.nodes["api"]
    assert [e.statement for e in api.evidence if e.source == "alert"] == [alerts[0].message]


def test_the_same_tick_without_the_alert_proposes_the_same_plan() -> None:
    """The alert changes what the approver reads, not the plan (nor the proposal id)."""
    paged = decide(AgentState(), hidden_downstream(), Desires(), alerts=[_alert("api")])
    quiet = decide(AgentState(), hidden_downstream(), Desires())
    assert [p.id for p in paged.proposals] == [p.id for p in quiet.proposals]
    assert all("Paged" not in p.rationale for p in quiet.proposals)


def test_an_alert_on_an_underused_node_is_a_finding_and_holds_back_its_scale_down() -> None:
    underused = snap([node("api", 10, 100.0, ext=300.0)])
    assert [p.intent for p in decide(AgentState(), underused, Desires()).proposals] == ["scale_down"]
    decision = decide(AgentState(), underused, Desires(), alerts=[_alert("api")])
    assert decision.proposals == ()
    assert [f.node for f in decision.detection.findings if f.kind is FindingKind.ALERT] == ["api"]


def test_an_alert_on_a_node_the_twin_does_not_have_is_left_out() -> None:
    decision = decide(AgentState(), hidden_downstream(), Desires(), alerts=[_alert("nosuch")])
    assert not any(f.kind is FindingKind.ALERT for f in decision.detection.findings)
    assert all("Paged" not in p.rationale for p in decision.proposals)
