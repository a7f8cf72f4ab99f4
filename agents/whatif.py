"""The what-if port the planner evaluates candidates with, and its steady-state engine.

`SteadyStateWhatIf` applies the actions to the graph and computes the reference
flow (ARCHITECTURE.md) at the horizon's load: exact for the steady state the twin
converges to, and fast enough for 1,000-node graphs. `SimulatorWhatIf` forks the
twin's simulator and runs the horizon, adding predicted latency and queues.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from pydantic import Field

from agents._frozen import Frozen
from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot
from twin.graph import out_edges_of, propagate, topological_order


class Prediction(Frozen):
    """Predicted state after the actions, per node."""

    replicas: dict[str, int]
    capacity: dict[str, float]
    demand: dict[str, float]
    """Offered demand (what arrives at the node's door, before its own rate limit)."""
    admitted: dict[str, float]
    """Demand the node admits (after its rate limit); what its capacity must carry."""
    shed_rps: float = 0.0
    latency_p95_ms: dict[str, float] = Field(default_factory=dict)
    queue_depth: dict[str, float] = Field(default_factory=dict)

    def utilization(self, node: str) -> float:
        """Admitted demand over capacity (1e6 for demand on zero capacity)."""
        cap = self.capacity[node]
        if cap <= 0:
            return 1e6 if self.admitted[node] > 0 else 0.0
        return self.admitted[node] / cap


class WhatIf(Protocol):
    """Predicts the twin `horizon_seconds` after applying `actions` to `snapshot`, without touching it."""

    def predict(self, snapshot: Snapshot, actions: Sequence[Action], horizon_seconds: float) -> Prediction:
        """The predicted state at the horizon."""
        ...


def steady_state(
    snapshot: Snapshot,
    actions: Sequence[Action],
    order: Sequence[str] | None = None,
    limits: Mapping[str, float] | None = None,
) -> Prediction:
    """Reference flow of `snapshot` with `actions` applied (rate limits, shifted ratios, replicas)."""
    replicas = {n.id: n.replicas for n in snapshot.nodes}
    mu = {n.id: n.capacity_per_replica for n in snapshot.nodes}
    caps: dict[str, float] = dict(limits or {})
    out = out_edges_of(snapshot)
    for action in actions:
        match action:
            case ScaleAction(node=n, replicas=r):
                replicas[n] = r
            case RateLimitAction(node=n, max_rps=m):
                if m is None:
                    caps.pop(n, None)
                else:
                    caps[n] = m
            case ShiftTrafficAction(source=s, ratios=ratios):
                out[s] = [(t, ratios.get(t, ratio)) for t, ratio in out[s]]
            case RestartAction():
                pass  # a restart changes no steady-state capacity; it only clears queues and errors
    if order is None:
        order = topological_order([n.id for n in snapshot.nodes], [(e.source, e.target) for e in snapshot.edges])
    ext = {n.id: n.external_arrival_rate or 0.0 for n in snapshot.nodes}
    cap = {n: replicas[n] * mu[n] for n in replicas}
    flow = propagate(order, ext, out, cap, caps)
    admitted = {n: min(flow.demand[n], caps.get(n, math.inf)) for n in order}
    shed = sum(flow.demand[n] - admitted[n] for n in caps if n in admitted)
    return Prediction(
        replicas=replicas,
        capacity=cap,
        demand=dict(flow.demand),
        admitted=admitted,
        shed_rps=shed,
    )


class SteadyStateWhatIf:
    """What-if by the reference flow semantics: the state the twin settles into at the given load."""

    def __init__(self) -> None:
        # The planner asks many questions about one graph; sorting it once is most of the saving.
        self._orders: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], list[str]] = {}

    def predict(self, snapshot: Snapshot, actions: Sequence[Action], horizon_seconds: float) -> Prediction:
        """Steady state after the actions; `horizon_seconds` does not change a steady state."""
        ids = tuple(n.id for n in snapshot.nodes)
        edges = tuple((e.source, e.target) for e in snapshot.edges)
        order = self._orders.get((ids, edges))
        if order is None:
            if len(self._orders) > 8:
                self._orders.clear()
            order = self._orders[(ids, edges)] = topological_order(ids, edges)
        return steady_state(snapshot, actions, order)


class SimulatorWhatIf:
    """What-if on the twin's simulator: fork (from the snapshot), apply, run `run_seconds`.

    Demand and admitted load come from the reference flow (the simulator follows the same
    semantics); replicas, p95 latency and queues come from the simulator's last predicted
    snapshot, so transients such as a queue still draining are seen.
    """

    def __init__(self, run_seconds: float = 300.0, dt: float = 15.0) -> None:
        self.run_seconds = run_seconds
        self.dt = dt

    def predict(self, snapshot: Snapshot, actions: Sequence[Action], horizon_seconds: float) -> Prediction:
        """Simulate `min(run_seconds, horizon_seconds)` (whole steps of dt) after applying the actions."""
        # Imported here so the steady-state engine stays usable without the simulator's machinery.
        from twin.simulator import what_if

        flow = steady_state(snapshot, actions)
        steps = max(1, round(min(self.run_seconds, horizon_seconds) / self.dt))
        predicted = what_if(snapshot, actions, steps * self.dt, self.dt)[-1]
        latency = {n.id: n.metrics.latency_p95_ms for n in predicted.nodes if n.metrics.latency_p95_ms is not None}
        queues = {n.id: n.metrics.queue_depth for n in predicted.nodes if n.metrics.queue_depth is not None}
        return flow.model_copy(
            update={
                "replicas": {n.id: n.replicas for n in predicted.nodes},
                "latency_p95_ms": latency,
                "queue_depth": queues,
            }
        )
