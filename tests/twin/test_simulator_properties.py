"""Properties of the simulator on random DAGs: the reference semantics, conservation, determinism."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.actions import ScaleAction, ShiftTrafficAction
from twin.contract import parse_snapshot
from twin.graph import snapshot_flow
from twin.scenario import Scenario, parse_scenario
from twin.simulator import Simulator


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random DAG (edges only point from lower to higher index) with constant external load."""
    n = draw(st.integers(min_value=1, max_value=8))
    nodes = [
        {
            "id": f"n{i}",
            "replicas": draw(st.integers(min_value=1, max_value=6)),
            "capacity_per_replica": draw(st.floats(min_value=1.0, max_value=300.0)),
            "max_replicas": 12,
        }
        for i in range(n)
    ]
    pairs = [(s, t) for s in range(n) for t in range(s + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12)) if pairs else []
    edges = [
        {"source": f"n{s}", "target": f"n{t}", "ratio": draw(st.floats(min_value=0.0, max_value=2.0))}
        for s, t in chosen
    ]
    entries = draw(st.lists(st.integers(min_value=0, max_value=n - 1), min_size=1, max_size=3, unique=True))
    load: dict[str, Any] = {
        f"n{i}": {"kind": "constant", "rate": draw(st.floats(min_value=0.0, max_value=1000.0))} for i in entries
    }
    raw = {"twin_id": "prop", "start": "2026-11-21T00:00:00Z", "nodes": nodes, "edges": edges, "load": load}
    return parse_scenario(raw)


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(sc=scenarios())
def test_fresh_simulator_matches_the_reference_flow(sc: Scenario) -> None:
    snap = Simulator(sc).snapshot()
    flow = snapshot_flow(snap)
    for node in snap.nodes:
        assert node.metrics.throughput == pytest.approx(flow.throughput[node.id], rel=1e-9, abs=1e-9)
        assert node.metrics.arrival_rate == pytest.approx(flow.arrivals[node.id], rel=1e-9, abs=1e-9)


@PROPERTY_SETTINGS
@given(sc=scenarios(), dt=st.sampled_from([0.5, 1.0, 5.0]))
def test_queues_conserve_work_and_throughput_never_exceeds_capacity(sc: Scenario, dt: float) -> None:
    sim = Simulator(sc)
    prev = {n.id: n.metrics.queue_depth or 0.0 for n in sim.snapshot().nodes}
    for snap in sim.run(10 * dt, dt=dt):
        for node in snap.nodes:
            m = node.metrics
            assert m.throughput is not None and m.arrival_rate is not None and m.queue_depth is not None
            assert m.throughput <= node.capacity * (1 + 1e-9) + 1e-9
            assert m.queue_depth >= 0.0
            # What arrived and was not served is exactly what the queue gained.
            gained = (m.arrival_rate - m.throughput) * dt
            assert m.queue_depth - prev[node.id] == pytest.approx(gained, rel=1e-6, abs=1e-6)
            prev[node.id] = m.queue_depth
        assert parse_snapshot(snap.to_json()).to_json() == snap.to_json()


@PROPERTY_SETTINGS
@given(sc=scenarios(), seed=st.integers(min_value=0, max_value=2**32))
def test_forks_replay_identically_and_leave_the_original(sc: Scenario, seed: int) -> None:
    sim = Simulator(sc.model_copy(update={"noise": 0.05}), seed=seed)
    sim.run(3)
    a, b = sim.fork(), sim.fork()
    first = sc.nodes[0]
    for twin in (a, b):
        twin.apply(ScaleAction(node=first.id, replicas=first.max_replicas))
        if sc.edges:
            twin.apply(ShiftTrafficAction(source=sc.edges[0].source, ratios={sc.edges[0].target: 0.0}))
    assert [s.to_json() for s in a.run(5)] == [s.to_json() for s in b.run(5)]
    assert sim.snapshot().node(first.id).replicas == first.replicas
    assert sim.elapsed == 3.0
