"""A gap is unknown, not zero: missing or contradictory load data lowers confidence and stops actions.

Field test: the entry node's external rate was missing from 2 of the last 3 samples; the agent
believed 0 rps and scaled a busy node 5 -> 2 while it served 650 rps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agents import AgentState, Desires, FindingKind, decide, detect, revise
from agents.beliefs import TRUSTED_CONFIDENCE
from tests.agents.conftest import metrics, node, snap
from twin.actions import ScaleAction
from twin.contract import Snapshot

STEP = 15.0


def shop(ext: float | None, at: float, observed: bool = False) -> Snapshot:
    """gateway (entry, 650 rps) -> recommendations (5 x 150: 87% at 650) -> db; `ext` None = not reported."""
    m: dict[str, Any] = {"metrics": metrics(650.0, 650.0, 0.65)} if observed else {}
    gateway = node("gateway", 4, 250.0, ext=0.0, lo=2, **m)
    if ext is None:
        del gateway["external_arrival_rate"]
    else:
        gateway["external_arrival_rate"] = ext
    rec_m: dict[str, Any] = {"metrics": metrics(650.0, 650.0, 0.87)} if observed else {}
    return snap(
        [gateway, node("recommendations", 5, 150.0, lo=2, **rec_m), node("db", 2, 800.0)],
        [("gateway", "recommendations", 1.0), ("recommendations", "db", 1.0)],
        at=at,
    )


def series(rates: Sequence[float | None], observed: bool = False) -> list[Snapshot]:
    return [shop(r, i * STEP, observed) for i, r in enumerate(rates)]


def scale_downs(decision: Any) -> list[ScaleAction]:
    return [
        a
        for p in decision.proposals
        for a in p.actions
        if isinstance(a, ScaleAction) and a.replicas < decision.beliefs.nodes[a.node].replicas
    ]


@pytest.mark.parametrize(
    "tail",
    [[None, 650.0, None], [None, None, 650.0], [650.0, None, None]],
    ids=["missing now and before", "missing twice, back now", "missing twice, now too"],
)
def test_load_missing_from_two_of_the_last_three_samples_is_unknown_not_zero(tail: list[float | None]) -> None:
    snaps = series([*[650.0] * 7, *tail])
    beliefs = revise(None, snaps[-1], snaps[:-1])
    gateway, rec = beliefs.node("gateway"), beliefs.node("recommendations")
    assert gateway.external_rate == pytest.approx(650.0)  # was 0: the gaps were read as zero load
    assert rec.demand_utilization == pytest.approx(650 / 750)
    assert not gateway.trusted and not rec.trusted and not beliefs.node("db").trusted
    assert gateway.confidence < TRUSTED_CONFIDENCE
    (issue,) = [i for i in beliefs.data_issues if i.problem == "missing_load"]
    assert issue.node == "gateway" and "2 of the last 3" in issue.detail
    assert any("flows from 'gateway'" in e.statement for e in rec.evidence)
    found = detect(beliefs)
    assert any(f.kind is FindingKind.DATA_QUALITY and f.node == "gateway" for f in found.findings)
    (at_risk,) = found.of_kind(FindingKind.AT_RISK)
    assert at_risk.node == "recommendations" and at_risk.confidence < TRUSTED_CONFIDENCE
    assert "low confidence" in at_risk.message


def test_one_older_gap_with_the_load_reported_now_stays_actionable() -> None:
    snaps = series([*[650.0] * 7, None, 650.0, 650.0])
    beliefs = revise(None, snaps[-1], snaps[:-1])
    gateway = beliefs.node("gateway")
    assert gateway.external_rate == pytest.approx(650.0)
    assert gateway.trusted and gateway.confidence < 1.0
    assert "missing_load" in {i.problem for i in beliefs.data_issues if i.node == "gateway"}


def test_a_trend_is_fitted_on_reported_samples_only() -> None:
    rates: list[float | None] = [500.0 + 10 * i for i in range(12)]
    for gap in (1, 2, 3, 5, 7, 9):  # half the window: read as zeros, they drown the trend
        rates[gap] = None
    snaps = series(rates)
    beliefs = revise(None, snaps[-1], snaps[:-1])
    assert beliefs.node("gateway").external_slope == pytest.approx(10 / STEP)


def test_no_decision_scales_down_or_acts_on_a_load_gap() -> None:
    snaps = series([*[650.0] * 7, None, 650.0, None])
    decision = decide(AgentState(), snaps[-1], Desires(), history=snaps[:-1])
    assert decision.proposals == ()  # was: scale-downs of all three nodes (recommendations 5 -> 2)
    # Tick by tick with the agent's own memory (as the workflow runs it): the same.
    state = AgentState()
    for s in snaps:
        decision = decide(state, s, Desires())
        assert scale_downs(decision) == [], s.observed_at
        state = decision.new_state
    assert decision.proposals == ()


def test_the_gate_is_specific_to_doubtful_data() -> None:
    # A node that reports no external load at all really is idle: scaling it down stays allowed.
    snaps = series([0.0] * 10)
    decision = decide(AgentState(), snaps[-1], Desires(), history=snaps[:-1])
    assert {a.node for a in scale_downs(decision)} == {"gateway", "recommendations", "db"}
    # And the load reported throughout gets the scale-up the 87% node needs.
    snaps = series([650.0] * 10)
    decision = decide(AgentState(), snaps[-1], Desires(), history=snaps[:-1])
    ups = [a for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction)]
    assert any(a.node == "recommendations" and a.replicas > 5 for a in ups)


def test_reported_zero_contradicted_by_observed_arrivals_blocks_downstream_scale_down() -> None:
    # The entry reports 0 rps but its own metrics show 650 rps arriving; downstream nodes have no
    # metrics of their own, so only the doubt flowing down the graph protects them.
    s = shop(0.0, 0.0, observed=True)
    doc = s.model_dump(mode="json", by_alias=True)
    for n in doc["nodes"][1:]:
        n["metrics"] = {}
    s = Snapshot.model_validate(doc)
    beliefs = revise(None, s)
    assert {i.problem for i in beliefs.data_issues if i.node == "gateway"} == {"contradiction"}
    assert not beliefs.node("recommendations").trusted and not beliefs.node("db").trusted
    decision = decide(AgentState(), s, Desires())
    assert scale_downs(decision) == []


def test_load_that_ended_before_the_window_is_not_a_gap() -> None:
    # The entry carried load 20 minutes ago and has reported none since: that is history, not a gap.
    old = shop(650.0, 0.0)
    recent = [shop(None, 1200.0 + i * STEP) for i in range(4)]
    beliefs = revise(None, recent[-1], [old, *recent[:-1]])
    assert not [i for i in beliefs.data_issues if i.problem == "missing_load"]
    assert beliefs.node("gateway").trusted and beliefs.node("gateway").external_rate == 0.0
