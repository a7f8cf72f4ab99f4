"""The plan library: typed steps (scale, shift_traffic, rate_limit, restart).

Each builder checks its preconditions (returning None when they fail), and gives
the step its effect (the twin action, whose effect the what-if engine models),
its cost, its risk (blast radius of the node touched) and its compensation.
"""

from __future__ import annotations

from agents.beliefs import Beliefs, NodeBelief
from agents.desires import Desires
from agents.proposal import PlanStep
from twin.actions import RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot

RESTART_ERROR_RATE = 0.05
"""A restart is only considered for a node failing this share of requests while not overloaded."""

RESTART_COST = 0.5
"""Nominal cost of a restart (lost queued work, a cold start), in replica-hour units."""


def scale_step(belief: NodeBelief, replicas: int, desires: Desires, cost_per_replica_hour: float) -> PlanStep | None:
    """Scale a node to `replicas`; None unless it is scalable and `replicas` is a change within bounds."""
    if belief.max_replicas <= belief.min_replicas or replicas == belief.replicas:
        return None
    if not belief.min_replicas <= replicas <= belief.max_replicas:
        return None
    return PlanStep(
        action=ScaleAction(node=belief.node, replicas=replicas),
        compensation=ScaleAction(node=belief.node, replicas=belief.replicas),
        description=f"scale {belief.node} {belief.replicas} -> {replicas}",
        cost_per_hour=(replicas - belief.replicas) * cost_per_replica_hour,
        blast_radius=belief.blast_radius,
        preconditions=(
            f"{belief.node} is scalable ({belief.min_replicas}..{belief.max_replicas})",
            f"{replicas} is within its bounds",
        ),
    )


def rate_limit_step(belief: NodeBelief, max_rps: float, desires: Desires) -> PlanStep | None:
    """Shed load at an entry node down to `max_rps`; None unless the node takes external traffic."""
    if belief.external_rate <= 0 or max_rps >= belief.demand:
        return None
    shed = belief.demand - max_rps
    return PlanStep(
        action=RateLimitAction(node=belief.node, max_rps=round(max_rps, 3)),
        compensation=RateLimitAction(node=belief.node, max_rps=None),
        description=f"rate-limit {belief.node} to {max_rps:.0f} rps (sheds {shed:.0f} rps)",
        cost_per_hour=shed * desires.shed_cost_per_rps_hour,
        blast_radius=belief.blast_radius,
        preconditions=(f"{belief.node} is an entry node ({belief.external_rate:.0f} rps external)",),
    )


def shift_step(snapshot: Snapshot, beliefs: Beliefs, source: str, ratios: dict[str, float]) -> PlanStep | None:
    """Re-weight `source`'s out-edges; None unless every named target is already an edge of `source`."""
    current = {e.target: e.ratio for e in snapshot.edges if e.source == source}
    if not ratios or any(t not in current for t in ratios):
        return None
    moved = ", ".join(f"{t} {current[t]:g}->{r:g}" for t, r in sorted(ratios.items()))
    return PlanStep(
        action=ShiftTrafficAction(source=source, ratios={t: round(r, 6) for t, r in ratios.items()}),
        compensation=ShiftTrafficAction(source=source, ratios={t: current[t] for t in ratios}),
        description=f"shift traffic from {source}: {moved}",
        cost_per_hour=0.0,
        blast_radius=max(beliefs.nodes[t].blast_radius for t in ratios),
        preconditions=(f"{source} already routes to " + ", ".join(sorted(ratios)),),
    )


def restart_step(belief: NodeBelief) -> PlanStep | None:
    """Restart a node that fails requests while not overloaded (a stuck or bad process); not compensable."""
    errors = belief.observed.error_rate
    if errors is None or errors < RESTART_ERROR_RATE or belief.demand_utilization >= 1.0:
        return None
    return PlanStep(
        action=RestartAction(node=belief.node),
        compensation=None,
        description=f"restart {belief.node} (error rate {errors:.0%} at {belief.demand_utilization:.0%} load)",
        cost_per_hour=RESTART_COST,
        blast_radius=belief.blast_radius,
        preconditions=(
            f"{belief.node} error rate {errors:.0%} >= {RESTART_ERROR_RATE:.0%}",
            f"{belief.node} is not overloaded (utilization {belief.demand_utilization:.2f} < 1)",
        ),
    )


def alternatives_for(snapshot: Snapshot, node: str) -> list[tuple[str, str]]:
    """(source, alternative) pairs where traffic to `node` can be shifted: siblings sharing its `pool` tag."""
    pool = snapshot.node(node).tags.get("pool")
    if not pool:
        return []
    pooled = {n.id for n in snapshot.nodes if n.tags.get("pool") == pool and n.id != node}
    sources = [e.source for e in snapshot.edges if e.target == node]
    return [(e.source, e.target) for e in snapshot.edges if e.source in sources and e.target in pooled]
