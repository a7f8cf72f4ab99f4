"""A series the source reports missing, stale or ambiguous (Snapshot.quality) leaves its node untrusted.

Missing metrics alone (a metric the source never measures) keep a node trusted at 0.8; a series
the source was asked for and could not answer is a data-quality finding, and the planner takes
no action on that node (nor, when the series feeds demand, on the nodes downstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agents import AgentState, Desires, FindingKind, decide, detect, revise
from agents.beliefs import SOURCE_ISSUE_CONFIDENCE, TRUSTED_CONFIDENCE
from tests.agents.conftest import metrics, node, snap
from twin.actions import ScaleAction
from twin.contract import Snapshot


def shop(quality: Sequence[dict[str, Any]] = ()) -> Snapshot:
    """gateway (1200 rps on 4 x 200: saturated) -> checkout (4 x 110) -> db; each with observed metrics."""
    base = snap(
        [
            node("gateway", 4, 200.0, ext=1200.0, lo=2, hi=20, metrics=metrics(1200.0, 800.0, 1.0)),
            node("checkout", 4, 110.0, lo=2, hi=12, metrics=metrics(320.0, 320.0, 0.73)),
            node("db", 3, 500.0, lo=3, hi=3, metrics=metrics(640.0, 640.0, 0.43)),
        ],
        [("gateway", "checkout", 0.4), ("checkout", "db", 2.0)],
    )
    return Snapshot.model_validate({**base.model_dump(by_alias=True), "quality": list(quality)})


def issue(node_id: str, metric: str, problem: str = "missing") -> dict[str, Any]:
    return {"node": node_id, "metric": metric, "problem": problem, "detail": f"query for {node_id} returned nothing"}


def scaled(snapshot: Snapshot) -> set[str]:
    decision = decide(AgentState(), snapshot, Desires())
    return {a.node for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction)}


def test_without_quality_issues_both_saturated_nodes_are_scaled() -> None:
    assert {"gateway", "checkout"} <= scaled(shop())


@pytest.mark.parametrize("problem", ["missing", "stale", "ambiguous"])
def test_a_source_quality_issue_makes_the_node_untrusted_and_a_data_quality_finding(problem: str) -> None:
    beliefs = revise(None, shop([issue("checkout", "utilization", problem)]))
    checkout = beliefs.node("checkout")
    assert checkout.confidence == pytest.approx(SOURCE_ISSUE_CONFIDENCE)
    assert checkout.confidence < TRUSTED_CONFIDENCE and not checkout.trusted
    assert beliefs.node("gateway").trusted and beliefs.node("db").trusted  # utilization feeds no demand
    (data_issue,) = [i for i in beliefs.data_issues if i.node == "checkout"]
    assert data_issue.problem == f"{problem}_series"
    assert "utilization" in data_issue.detail and "returned nothing" in data_issue.detail
    findings = detect(beliefs).findings
    assert any(f.kind is FindingKind.DATA_QUALITY and f.node == "checkout" for f in findings)


def test_the_planner_takes_no_action_on_a_node_with_a_missing_series() -> None:
    # checkout is hidden behind the saturated gateway: one group, planned together or not at all.
    assert scaled(shop([issue("checkout", "throughput")])) == set()
    # A series missing at a node outside that group leaves the group's plan alone.
    assert {"gateway", "checkout"} <= scaled(shop([issue("db", "throughput")]))


def test_a_missing_series_that_feeds_demand_puts_the_nodes_downstream_in_doubt() -> None:
    beliefs = revise(None, shop([issue("checkout", "ratio")]))
    assert not beliefs.node("checkout").trusted
    db = beliefs.node("db")
    assert not db.trusted and any("flows from 'checkout'" in e.statement for e in db.evidence)
    assert beliefs.node("gateway").trusted
    assert "checkout" not in scaled(shop([issue("checkout", "ratio")]))


def test_a_metric_the_source_never_measures_is_not_a_source_issue() -> None:
    # Absent metrics without a quality issue are the old "missing_metrics" (0.8): still trusted.
    plain = snap(
        [node("gateway", 4, 200.0, ext=1200.0, lo=2, hi=20), node("checkout", 4, 110.0, lo=2, hi=12)],
        [("gateway", "checkout", 0.4)],
    )
    beliefs = revise(None, plain)
    assert beliefs.node("checkout").trusted
    assert {i.problem for i in beliefs.data_issues} == {"missing_metrics"}
