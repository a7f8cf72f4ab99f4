"""Property tests on random DAGs: feasible plans reach target at (near) optimal cost."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import AgentState, Budget, Desires, decide, steady_state
from tests.agents.conftest import node, snap
from twin.actions import ScaleAction
from twin.contract import Snapshot
from twin.graph import optimal_replicas


@st.composite
def dags(draw: Any) -> Snapshot:
    n = draw(st.integers(min_value=2, max_value=12))
    nodes = []
    for i in range(n):
        entry = i == 0 or (draw(st.booleans()) and i < 3)
        nodes.append(
            node(
                f"n{i}",
                draw(st.integers(min_value=1, max_value=10)),
                draw(st.floats(min_value=10.0, max_value=500.0)),
                ext=draw(st.floats(min_value=10.0, max_value=2000.0)) if entry else 0.0,
                lo=1,
                hi=1_000_000,  # generous: the property is about feasible plans
            )
        )
    edges = []
    for j in range(1, n):
        parents = draw(st.lists(st.integers(min_value=0, max_value=j - 1), min_size=0, max_size=3, unique=True))
        for p in parents:
            edges.append((f"n{p}", f"n{j}", draw(st.floats(min_value=0.05, max_value=2.0))))
    return snap(nodes, edges)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.sampled_from([0.6, 0.7, 0.8, 0.9]))
def test_feasible_plans_reach_target_within_one_replica_per_node_of_optimum(s: Snapshot, target: float) -> None:
    desires = Desires(target_utilization=target, scale_down_below=0.3, scale_down_to=0.5)
    decision = decide(AgentState(), s, desires)
    remediations = [p for p in decision.proposals if p.intent == "remediate"]
    actions = [a for p in remediations for a in p.actions]
    assert all(isinstance(a, ScaleAction) for a in actions)  # feasible: scaling alone suffices
    assert all(p.unmet == () for p in remediations)
    after = steady_state(s, actions)
    for n in s.nodes:
        assert after.utilization(n.id) <= target + 1e-9, (n.id, after.utilization(n.id))
    best = optimal_replicas(s, target)
    for a in actions:
        assert isinstance(a, ScaleAction)
        assert a.replicas <= best[a.node] + 1
    added = sum(a.replicas - s.node(a.node).replicas for a in actions if isinstance(a, ScaleAction))
    optimal_added = sum(max(0, best[n.id] - n.replicas) for n in s.nodes)
    assert optimal_added <= added <= optimal_added + len(s.nodes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.integers(min_value=0, max_value=60))
def test_budget_is_never_exceeded_and_what_stays_unmet_is_listed(s: Snapshot, extra: int) -> None:
    total = sum(n.replicas for n in s.nodes) + extra
    desires = Desires(budget=Budget(total_replicas=total))
    decision = decide(AgentState(), s, desires)
    actions = [a for p in decision.proposals if p.intent == "remediate" for a in p.actions]
    after = steady_state(s, actions)
    assert sum(after.replicas.values()) <= total
    over = [n.id for n in s.nodes if after.utilization(n.id) > 0.8 + 1e-9]
    if over:
        assert any(p.unmet for p in decision.proposals if p.intent == "remediate")
