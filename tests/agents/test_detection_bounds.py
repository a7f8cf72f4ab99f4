"""Whatever validation lets through, belief revision, detection and a decision stay finite and do not raise."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentState, Desires, decide, detect, revise
from twin.contract import (
    MAX_CAPACITY_PER_REPLICA,
    MAX_RATE,
    MAX_REPLICAS,
    MIN_CAPACITY_PER_REPLICA,
    SnapshotError,
    parse_snapshot,
)

_extreme_rate = st.sampled_from([0.0, 1e-9, 1.0, MAX_RATE])
_extreme_capacity = st.sampled_from([MIN_CAPACITY_PER_REPLICA, 1.0, MAX_CAPACITY_PER_REPLICA])
_extreme_replicas = st.sampled_from([0, 1, MAX_REPLICAS])
_extreme_ratio = st.sampled_from([0.0, 1e-6, 1.0, 2.0, 1e3])


@st.composite
def extreme_documents(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(1, 40))
    nodes = []
    for i in range(size):
        replicas = draw(_extreme_replicas)
        nodes.append(
            {
                "id": f"n{i}",
                "replicas": replicas,
                "capacity_per_replica": draw(_extreme_capacity),
                "min_replicas": 0,
                "max_replicas": MAX_REPLICAS,
                "external_arrival_rate": draw(st.none() | _extreme_rate),
                "metrics": {
                    "arrival_rate": draw(st.none() | _extreme_rate),
                    "throughput": draw(st.none() | _extreme_rate),
                },
            }
        )
    pairs = draw(st.sets(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=3 * size))
    edges = [{"source": f"n{a}", "target": f"n{b}", "ratio": draw(_extreme_ratio)} for a, b in sorted(pairs) if a < b]
    return {"schema": "twin.v1", "twin_id": "x", "observed_at": "2026-11-21T22:00:00Z", "nodes": nodes, "edges": edges}


@settings(max_examples=80, deadline=None)
@given(extreme_documents())
def test_a_valid_snapshot_at_the_bounds_never_breaks_the_agent(doc: dict[str, Any]) -> None:
    try:
        snapshot = parse_snapshot(doc)
    except SnapshotError as exc:
        assert "amplification" in str(exc)  # the only graph rule these documents can break
        return
    beliefs = revise(None, snapshot)
    for b in beliefs.nodes.values():
        assert math.isfinite(b.demand) and math.isfinite(b.demand_utilization) and math.isfinite(b.blast_radius)
    detection = detect(beliefs)
    assert all(f.demand_utilization is None or math.isfinite(f.demand_utilization) for f in detection.findings)
    decision = decide(AgentState(), snapshot, Desires())
    assert decision.new_state.model_dump_json()
