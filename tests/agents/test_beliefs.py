"""Belief revision: demand through the graph, robust trends, data quality, evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents import Desires, revise, theil_sen_slope
from tests.agents.conftest import T0, hidden_downstream, metrics, node, ramp, snap


def test_hidden_node_is_seen_by_its_demand_not_its_metrics() -> None:
    beliefs = revise(None, hidden_downstream())
    db = beliefs.node("db")
    assert db.demand == pytest.approx(1200.0)
    assert db.demand_utilization == pytest.approx(1.1, rel=1e-4)
    assert db.arrivals == pytest.approx(1000.0)  # throttled by api
    assert db.throttled and db.upstream_saturated
    assert not beliefs.node("api").throttled
    assert beliefs.constraint == "api"
    assert any("held back" in e.statement for e in db.evidence)


def test_trend_is_theil_sen_and_ignores_an_outlier() -> None:
    points = [(float(t), 100.0 + 2.0 * t) for t in range(10)]
    points[4] = (4.0, 10_000.0)  # one wild scrape
    assert theil_sen_slope(points) == pytest.approx(2.0)


def test_trend_from_history_and_from_previous_beliefs_agree() -> None:
    snaps = ramp([500 + 10 * i for i in range(8)])
    from_history = revise(None, snaps[-1], snaps[:-1])
    rolling = None
    for s in snaps:
        rolling = revise(rolling, s)
    assert rolling is not None
    slope = 10 / 60
    assert from_history.node("api").external_slope == pytest.approx(slope)
    assert rolling.node("api").external_slope == pytest.approx(slope)
    assert rolling.node("api").demand_slope == pytest.approx(slope)
    assert len(rolling.window) == 8


def test_flat_noisy_load_has_no_trend() -> None:
    snaps = ramp([700, 703, 698, 701, 699, 702, 700, 697])
    assert revise(None, snaps[-1], snaps[:-1]).node("api").external_slope == 0.0


def test_missing_metrics_lower_confidence_and_are_reported() -> None:
    beliefs = revise(None, snap([node("a", 2, 100.0, ext=50.0)]))
    assert beliefs.node("a").confidence < 1.0
    assert [i.problem for i in beliefs.data_issues] == ["missing_metrics"]


def test_metrics_contradicting_the_graph_are_reported() -> None:
    s = snap([node("a", 2, 100.0, ext=50.0, metrics=metrics(400.0, 390.0, 1.95))])
    beliefs = revise(None, s)
    problems = {i.problem for i in beliefs.data_issues}
    assert problems == {"contradiction"}
    assert beliefs.node("a").confidence <= 0.5


def test_consistent_metrics_have_full_confidence() -> None:
    s = snap([node("a", 2, 100.0, ext=50.0, metrics=metrics(50.0, 50.0, 0.25))])
    beliefs = revise(None, s)
    assert beliefs.data_issues == ()
    assert beliefs.confidence == 1.0


def test_stale_snapshot_by_clock_and_by_replay() -> None:
    s = snap([node("a", 2, 100.0, ext=50.0, metrics=metrics(50.0, 50.0, 0.25))])
    old = revise(None, s, now=T0 + timedelta(seconds=600), desires=Desires(max_snapshot_age_seconds=60))
    assert old.stale and old.data_issues[0].problem == "stale"
    replayed = revise(revise(None, s), s)
    assert replayed.stale


def test_zero_replicas_with_demand_does_not_raise() -> None:
    beliefs = revise(None, snap([node("a", 0, 100.0, ext=50.0, lo=0)]))
    assert beliefs.node("a").demand_utilization >= 1e6
    assert beliefs.constraint == "a"


def test_blast_radius_is_share_of_external_traffic() -> None:
    s = snap(
        [node("a", 2, 100.0, ext=300.0), node("b", 2, 100.0, ext=100.0), node("c", 2, 100.0)],
        [("a", "c", 1.0)],
    )
    beliefs = revise(None, s)
    assert beliefs.node("c").blast_radius == pytest.approx(0.75)
    assert beliefs.node("b").blast_radius == pytest.approx(0.25)


def test_blast_radius_matches_reachability_with_many_entries() -> None:
    # 21 entries span three bytes of the entry bitset; each sink is reached by a known subset.
    entries = [node(f"e{i}", 1, 100.0, ext=float(i + 1)) for i in range(21)]
    sinks = [node(f"s{k}", 1, 100.0) for k in range(3)]
    edges = [(f"e{i}", f"s{k}", 1.0) for k in range(3) for i in range(21) if i % (k + 2) == 0]
    beliefs = revise(None, snap([*entries, *sinks], edges))
    total = sum(range(1, 22))
    for k in range(3):
        expected = sum(i + 1 for i in range(21) if i % (k + 2) == 0) / total
        assert beliefs.node(f"s{k}").blast_radius == pytest.approx(expected)
    assert beliefs.node("e20").blast_radius == pytest.approx(21 / total)
