"""Reference flow semantics of a twin.v1 graph (ARCHITECTURE.md, "what bottleneck means").

Offered demand  D[i] = ext[i] + sum(ratio[u,i] * D[u])        (topological order)
Capacity        C[i] = replicas[i] * mu[i]
Utilization     rho[i] = D[i] / C[i]
Throttled       A[i] = ext[i] + sum(ratio[u,i] * T[u]),  T[i] = min(A[i], C[i], limit[i])

The functions take plain mappings so the simulator, the detector and the planner
share one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter

from twin.contract import Snapshot

DEFAULT_TARGET_UTILIZATION = 0.8


def topological_order(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[str]:
    """Nodes ordered so every edge points forward; ties keep the input order."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        preds[t].append(s)
    sorter = TopologicalSorter(preds)
    sorter.prepare()
    index = {n: i for i, n in enumerate(nodes)}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=index.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


@dataclass(frozen=True)
class Flow:
    """Demand and throttled flow through the graph at one instant."""

    order: tuple[str, ...]
    demand: Mapping[str, float]
    capacity: Mapping[str, float]
    arrivals: Mapping[str, float]
    throughput: Mapping[str, float]

    def utilization(self, node: str) -> float:
        """Demand utilization rho = D / C (inf when the node has no capacity but has demand)."""
        cap = self.capacity[node]
        d = self.demand[node]
        if cap <= 0:
            return math.inf if d > 0 else 0.0
        return d / cap


def propagate(
    order: Sequence[str],
    external: Mapping[str, float],
    out_edges: Mapping[str, Sequence[tuple[str, float]]],
    capacity: Mapping[str, float],
    limits: Mapping[str, float] | None = None,
) -> Flow:
    """Push external load through the DAG in `order`.

    `limits` caps what a node admits (a rate limit); shed load counts as neither
    demand served nor demand passed downstream, but stays in the node's offered demand.
    """
    limits = limits or {}
    demand = dict.fromkeys(order, 0.0)
    arrivals = dict.fromkeys(order, 0.0)
    throughput: dict[str, float] = {}
    for n in order:
        demand[n] += external.get(n, 0.0)
        arrivals[n] += external.get(n, 0.0)
    for n in order:
        admitted_demand = min(demand[n], limits.get(n, math.inf))
        t = min(arrivals[n], capacity[n], limits.get(n, math.inf))
        throughput[n] = t
        for target, ratio in out_edges.get(n, ()):
            demand[target] += ratio * admitted_demand
            arrivals[target] += ratio * t
    return Flow(tuple(order), demand, dict(capacity), arrivals, throughput)


def out_edges_of(snapshot: Snapshot) -> dict[str, list[tuple[str, float]]]:
    """Adjacency list {source: [(target, ratio), ...]} of a snapshot."""
    out: dict[str, list[tuple[str, float]]] = {n.id: [] for n in snapshot.nodes}
    for e in snapshot.edges:
        out[e.source].append((e.target, e.ratio))
    return out


def snapshot_flow(
    snapshot: Snapshot,
    replicas: Mapping[str, int] | None = None,
    limits: Mapping[str, float] | None = None,
) -> Flow:
    """Reference flow of a snapshot, optionally with other replica counts or rate limits."""
    replicas = replicas or {}
    order = topological_order([n.id for n in snapshot.nodes], [(e.source, e.target) for e in snapshot.edges])
    ext = {n.id: n.external_arrival_rate or 0.0 for n in snapshot.nodes}
    cap = {n.id: replicas.get(n.id, n.replicas) * n.capacity_per_replica for n in snapshot.nodes}
    return propagate(order, ext, out_edges_of(snapshot), cap, limits)


def optimal_replicas(snapshot: Snapshot, target: float = DEFAULT_TARGET_UTILIZATION) -> dict[str, int]:
    """Cheapest scale-only fix: clamp(ceil(D / (target * mu)), min, max) for every node."""
    flow = snapshot_flow(snapshot)
    result: dict[str, int] = {}
    for n in snapshot.nodes:
        # 1e-9 keeps an exact fit (D == target * mu * r) from rounding up through float noise.
        need = math.ceil(flow.demand[n.id] / (target * n.capacity_per_replica) - 1e-9)
        result[n.id] = max(n.min_replicas, min(n.max_replicas, need))
    return result
