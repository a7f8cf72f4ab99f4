"""Reference flow semantics: demand, throttled throughput, the cheapest scale-only fix."""

from __future__ import annotations

from typing import Any

import pytest

from twin.contract import parse_snapshot
from twin.graph import optimal_replicas, snapshot_flow, topological_order


def test_topological_order_keeps_input_order_for_ties() -> None:
    assert topological_order(["c", "a", "b"], [("a", "b")]) == ["c", "a", "b"]
    assert topological_order(["b", "a"], [("a", "b")]) == ["a", "b"]


def test_demand_and_throttling(doc: dict[str, Any]) -> None:
    # gateway: D=900, C=1000. checkout: D=360, C=400. db: D=720, C=1000.
    flow = snapshot_flow(parse_snapshot(doc))
    assert flow.demand == pytest.approx({"gateway": 900, "checkout": 360, "db": 720})
    assert flow.utilization("gateway") == pytest.approx(0.9)
    # gateway losing half its replicas throttles everything downstream...
    throttled = snapshot_flow(parse_snapshot(doc), replicas={"gateway": 2})
    assert throttled.throughput["gateway"] == pytest.approx(500)
    assert throttled.throughput["checkout"] == pytest.approx(200)
    # ...while demand downstream is unchanged: the hidden constraint is still visible.
    assert throttled.demand["checkout"] == pytest.approx(360)
    assert throttled.utilization("checkout") == pytest.approx(0.9)


def test_rate_limit_sheds_at_the_node(doc: dict[str, Any]) -> None:
    flow = snapshot_flow(parse_snapshot(doc), limits={"gateway": 500})
    assert flow.demand["gateway"] == pytest.approx(900)
    assert flow.throughput["gateway"] == pytest.approx(500)
    assert flow.demand["checkout"] == pytest.approx(200)


def test_optimal_replicas_follows_the_formula(doc: dict[str, Any]) -> None:
    # ceil(900 / (0.8*250)) = 5; ceil(360 / 160) = 3; db fixed at 1 (min=max=1).
    assert optimal_replicas(parse_snapshot(doc), 0.8) == {"gateway": 5, "checkout": 3, "db": 1}
