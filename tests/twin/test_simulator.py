"""The simulator against the reference flow semantics and queueing theory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from twin.actions import ScaleAction
from twin.contract import parse_snapshot
from twin.graph import snapshot_flow
from twin.queueing import response_time_p95
from twin.scenario import Scenario, parse_scenario
from twin.simulator import Simulator

START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def scenario(**overrides: Any) -> Scenario:
    """Three nodes in a chain with a fan-out ratio: web -(0.5)-> api -(2.0)-> db."""
    raw: dict[str, Any] = {
        "twin_id": "shop",
        "start": START.isoformat(),
        "nodes": [
            {"id": "web", "replicas": 4, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20},
            {"id": "api", "replicas": 2, "capacity_per_replica": 50.0, "min_replicas": 1, "max_replicas": 10},
            {"id": "db", "kind": "database", "replicas": 1, "capacity_per_replica": 500.0},
        ],
        "edges": [
            {"source": "web", "target": "api", "ratio": 0.5},
            {"source": "api", "target": "db", "ratio": 2.0},
        ],
        "load": {"web": {"kind": "constant", "rate": 120.0}},
    }
    raw.update(overrides)
    return parse_scenario(raw)


def test_steady_state_matches_hand_computed_flow() -> None:
    sim = Simulator(scenario())
    snap = sim.run(10)[-1]
    # web: D = 120, C = 400 -> T = 120, util 0.3
    # api: D = 60,  C = 100 -> T = 60,  util 0.6
    # db:  D = 120, C = 500 -> T = 120, util 0.24
    expected = {"web": (120.0, 120.0, 0.3), "api": (60.0, 60.0, 0.6), "db": (120.0, 120.0, 0.24)}
    for node_id, (arrivals, throughput, util) in expected.items():
        m = snap.node(node_id).metrics
        assert m.arrival_rate == pytest.approx(arrivals)
        assert m.throughput == pytest.approx(throughput)
        assert m.utilization == pytest.approx(util)
        assert m.queue_depth == 0.0
    flow = snapshot_flow(snap)
    assert flow.demand == pytest.approx({"web": 120.0, "api": 60.0, "db": 120.0})


def test_stable_latency_is_mmc_p95() -> None:
    snap = Simulator(scenario()).run(5)[-1]
    api = snap.node("api")
    assert api.metrics.latency_p95_ms == pytest.approx(response_time_p95(2, 60.0, 50.0) * 1000.0)


def test_saturated_queue_grows_at_demand_minus_capacity() -> None:
    # api: D = 0.5 * 300 = 150 > C = 100 -> the queue grows 50 per second.
    sim = Simulator(scenario(load={"web": {"kind": "constant", "rate": 300.0}}))
    depths = [s.node("api").metrics.queue_depth for s in sim.run(20)]
    assert depths == pytest.approx([50.0 * k for k in range(1, 21)])
    api = sim.snapshot().node("api")
    assert api.metrics.throughput == pytest.approx(100.0)
    assert api.metrics.utilization == pytest.approx(1.0)
    # Saturated latency: queue / throughput + one service time.
    assert api.metrics.latency_p95_ms == pytest.approx((1000.0 / 100.0 + 1 / 50.0) * 1000.0)


def test_fractional_steps_grow_the_queue_at_the_same_rate() -> None:
    sim = Simulator(scenario(load={"web": {"kind": "constant", "rate": 300.0}}))
    sim.run(10, dt=0.25)
    assert sim.snapshot().node("api").metrics.queue_depth == pytest.approx(500.0)
    assert sim.elapsed == pytest.approx(10.0)


def test_downstream_of_saturated_node_is_throttled() -> None:
    # web saturated (D 500 > C 400) hides api: its demand 250 > C 100 while it sees only 200.
    sim = Simulator(
        scenario(
            nodes=[
                {"id": "web", "replicas": 4, "capacity_per_replica": 100.0, "max_replicas": 20},
                {"id": "api", "replicas": 5, "capacity_per_replica": 50.0, "max_replicas": 10},
                {"id": "db", "kind": "database", "replicas": 1, "capacity_per_replica": 500.0},
            ],
            load={"web": {"kind": "constant", "rate": 500.0}},
        )
    )
    snap = sim.run(30)[-1]
    api = snap.node("api").metrics
    assert api.arrival_rate == pytest.approx(200.0)
    assert api.throughput == pytest.approx(200.0)
    assert api.utilization == pytest.approx(0.8)
    assert api.queue_depth == 0.0
    flow = snapshot_flow(snap)
    assert flow.demand["api"] == pytest.approx(250.0)
    assert flow.utilization("api") == pytest.approx(1.0)
    assert flow.utilization("web") == pytest.approx(1.25)
    # The sim's observed flows are the reference throttled flows.
    assert flow.throughput == pytest.approx({n.id: n.metrics.throughput for n in snap.nodes})


def test_queue_drains_at_capacity_when_capacity_returns() -> None:
    sim = Simulator(scenario(load={"web": {"kind": "constant", "rate": 300.0}}))
    sim.run(10)  # api queue 500
    sim.apply(ScaleAction(node="api", replicas=4))  # C = 200, arrivals 150: drains 50/s
    depths = [s.node("api").metrics.queue_depth for s in sim.run(12)]
    assert depths[:10] == pytest.approx([500.0 - 50.0 * k for k in range(1, 11)])
    assert depths[-1] == 0.0
    snaps = sim.run(1)
    assert snaps[0].node("api").metrics.throughput == pytest.approx(150.0)


def test_from_snapshot_starts_at_observation(doc: dict[str, Any]) -> None:
    snap = parse_snapshot(doc)
    sim = Simulator.from_snapshot(snap)
    assert sim.now == snap.observed_at
    assert sim.elapsed == 0.0
    first = sim.snapshot()
    assert first.node("gateway").metrics.queue_depth == 12.0
    assert first.node("gateway").external_arrival_rate == 900.0
    assert [e.model_dump() for e in first.edges] == [e.model_dump() for e in snap.edges]
    # gateway C = 1000 > 900: the 12 queued drain in the first second.
    after = sim.run(1)[0]
    assert after.node("gateway").metrics.queue_depth == 0.0
    assert after.node("gateway").metrics.throughput == pytest.approx(912.0)


def test_snapshot_is_valid_twin_v1() -> None:
    sim = Simulator(scenario(load={"web": {"kind": "constant", "rate": 300.0}}, noise=0.1, seed=3))
    for snap in sim.run(30, record_every=5):
        reparsed = parse_snapshot(snap.to_json())
        assert reparsed.to_json() == snap.to_json()
