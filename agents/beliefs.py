"""Beliefs: what the agent holds true about the twin, revised from each snapshot and its history.

Demand is computed through the graph (reference semantics), never read off the
metrics: a node behind a saturated upstream shows throttled arrivals while its
offered demand already exceeds its capacity, and the agent must see that.
Every belief carries its evidence, a sentence a human can check.

A gap is unknown, not zero: an entry node whose external load was not reported is
believed at its last reported level with low confidence, and so is every node whose
demand flows from it (or from a node whose observed arrivals contradict the graph).
The planner takes no action that rests on a belief below `TRUSTED_CONFIDENCE`.

A series the source itself reports missing, stale or ambiguous (`Snapshot.quality`) is
worse than a metric simply absent: the source was asked and had no sound answer, so the
node is not trusted, and where the series feeds demand (external load, an edge's ratio)
neither is any node downstream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from statistics import median
from typing import Literal, NamedTuple

from pydantic import AwareDatetime, Field

from agents._frozen import Frozen
from agents.desires import Desires
from agents.forecast import DemandOutlook
from agents.trend import MAX_SAMPLES, significant_slope
from twin.contract import Metrics, NodeKind, Snapshot
from twin.graph import out_edges_of, propagate, topological_order

RHO_CAP = 1e6
"""Demand utilization reported for demand on zero capacity."""

TRUSTED_CONFIDENCE = 0.6
"""Beliefs below this confidence support no action (no scale-down above all): missing metrics
alone (0.8) stay above it; contradictions (0.5), load gaps (0.25), staleness (0.3) and series the
source reports missing, stale or ambiguous (0.3) fall below."""

SOURCE_ISSUE_CONFIDENCE = 0.3
"""Confidence in a node whose source reported one of its series missing, stale or ambiguous."""

_DEMAND_METRICS = frozenset({"external_arrival_rate", "ratio"})
"""Source quality issues on these put the demand of every node downstream in doubt too."""

GAP_CONFIDENCE = 0.25
"""Confidence in external load that is not reported now, or in fewer than 2 of the last 3 samples."""

OLD_GAP_CONFIDENCE = 0.8
"""Confidence in external load reported now and in 2 of the last 3 samples (one older gap)."""

WINDOW_SECONDS = 900.0
"""Samples older than this (relative to the newest snapshot) leave the trend window."""


class Evidence(Frozen):
    """Why the agent believes something: where it came from and a sentence a human can check."""

    source: Literal["snapshot", "graph", "history", "desires", "alert"]
    statement: str


class Sample(Frozen):
    """One point of the trend window: external load per entry node at a moment."""

    at: AwareDatetime
    external: dict[str, float]
    """Reported external load > 0; a node absent here and from `missing` reported 0."""
    missing: tuple[str, ...] = ()
    """Entry nodes whose external load was not reported in this sample (unknown, not zero)."""

    def known(self, node: str) -> bool:
        """Whether this sample holds a measurement of `node`'s external load."""
        return node not in self.missing

    def rate(self, node: str) -> float:
        """Reported external load of `node` (0 when it reported none); check `known` first."""
        return self.external.get(node, 0.0)


class DataIssue(Frozen):
    """A data-quality problem: stale snapshot, missing metrics, metrics contradicting the graph."""

    node: str | None
    problem: Literal[
        "stale",
        "missing_metrics",
        "contradiction",
        "missing_load",
        "missing_series",
        "stale_series",
        "ambiguous_series",
    ]
    detail: str


class NodeBelief(Frozen):
    """Everything believed about one node, with the evidence for it."""

    node: str
    kind: NodeKind
    tags: dict[str, str] = Field(default_factory=dict)
    replicas: int
    min_replicas: int
    max_replicas: int
    capacity_per_replica: float
    capacity: float
    external_rate: float
    demand: float
    """Offered demand D through the graph (rps)."""
    demand_utilization: float
    """rho = D / C; may exceed 1; inf for demand on zero capacity."""
    arrivals: float
    """Arrivals the node actually sees, throttled by upstream capacity (reference semantics)."""
    throttled: bool
    """True when upstream constraints hide part of this node's demand from its metrics."""
    upstream_saturated: bool
    external_slope: float
    """Robust slope of this node's external load (rps per second)."""
    demand_slope: float
    """Slope of offered demand, propagated linearly through the graph (rps per second)."""
    utilization_slope: float
    """Slope of demand utilization at current capacity (per second)."""
    blast_radius: float
    """Share of all external traffic that passes through this node (0..1)."""
    observed: Metrics
    confidence: float
    evidence: tuple[Evidence, ...] = ()
    forecast: DemandOutlook | None = None
    """The demand forecast over the planning window, where a seasonal one exists (agents/outlook.py)."""

    @property
    def trusted(self) -> bool:
        """Whether this belief is sure enough to act on (confidence >= TRUSTED_CONFIDENCE)."""
        return self.confidence >= TRUSTED_CONFIDENCE


class Memory(Frozen):
    """What belief revision carries from one snapshot to the next: small enough for workflow state."""

    twin_id: str
    observed_at: AwareDatetime
    window: tuple[Sample, ...] = ()


class Beliefs(Frozen):
    """The agent's picture of one twin at `observed_at`."""

    twin_id: str
    observed_at: AwareDatetime
    snapshot: Snapshot
    order: tuple[str, ...]
    nodes: dict[str, NodeBelief]
    constraint: str | None
    """Node with the highest demand utilization (None when nothing carries load)."""
    data_issues: tuple[DataIssue, ...] = ()
    window: tuple[Sample, ...] = ()
    stale: bool = False
    confidence: float = 1.0

    def node(self, node_id: str) -> NodeBelief:
        """Belief about one node; KeyError naming it if absent."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(f"twin {self.twin_id!r} has no node {node_id!r}") from None

    def memory(self) -> Memory:
        """The part of these beliefs the next revision needs (twin, time, trend window)."""
        return Memory(twin_id=self.twin_id, observed_at=self.observed_at, window=self.window)

    def projected_demand(self, seconds: float) -> dict[str, float]:
        """Offered demand `seconds` ahead when rising trends continue (falling ones are ignored: be cautious)."""
        return {n: b.demand + max(0.0, b.demand_slope) * seconds for n, b in self.nodes.items()}


def _window(previous: Beliefs | Memory | None, history: Sequence[Snapshot], snapshot: Snapshot) -> tuple[Sample, ...]:
    horizon = snapshot.observed_at.timestamp() - WINDOW_SECONDS

    samples: dict[datetime, Sample] = {}
    entries: set[str] = set()
    if previous is not None and previous.twin_id == snapshot.twin_id:
        for s in previous.window:
            if s.at.timestamp() >= horizon:
                samples[s.at] = s
                entries.update(s.external, s.missing)
    snaps = [
        snap
        for snap in (*history, snapshot)
        if snap.twin_id == snapshot.twin_id
        and horizon <= snap.observed_at.timestamp() <= snapshot.observed_at.timestamp()
    ]
    # An entry node is one that carried external load at some point of the window; only its gaps
    # are unknowns (a node that never reports external load has none).
    for snap in snaps:
        entries.update(n.id for n in snap.nodes if n.external_arrival_rate)
    for snap in snaps:
        reported = {n.id: n.external_arrival_rate for n in snap.nodes if n.external_arrival_rate is not None}
        samples[snap.observed_at] = Sample(
            at=snap.observed_at,
            external={n: v for n, v in reported.items() if v > 0},
            missing=tuple(sorted(n for n in entries if n not in reported)),
        )
    return tuple(samples[t] for t in sorted(samples))[-MAX_SAMPLES:]


LEVEL_SAMPLES = 3
"""External load is believed at the median of the last few samples: one noisy scrape cannot
trigger a scale-up (the anti-flapping rule for measurement noise), while a real step shows
after two ticks."""


class _Level(NamedTuple):
    """Believed external load of one node, and how sure of it the agent is."""

    rate: float
    confidence: float = 1.0
    gap: str | None = None
    """Why the load is uncertain (a sentence), when a sample lacks it."""


def _level(window: Sequence[Sample], node: str, now_rate: float | None, slope: float) -> _Level:
    """External load believed for `node`: the median of the last samples carried along the trend.

    Samples that lack the node's load are left out, never read as zero. When the newest lacks
    it, the belief is the last reported level, held with low confidence.
    """
    recent = window[-LEVEL_SAMPLES:]
    if not recent:
        return _Level(now_rate or 0.0)
    now = recent[-1].at.timestamp()
    known = [s for s in recent if s.known(node)]
    gaps = len(recent) - len(known)
    if gaps == 0:
        if now_rate is None or now_rate <= 0 or len(recent) < LEVEL_SAMPLES:
            return _Level(now_rate or 0.0)
        # Each sample is carried forward along the trend before taking the median, so a ramp is not lagged.
        return _Level(median(s.rate(node) + slope * (now - s.at.timestamp()) for s in recent))
    if not known:
        earlier = [s for s in window if s.known(node)]
        known = earlier[-1:]
    if not known:
        return _Level(0.0, GAP_CONFIDENCE, "external load never reported in the window")
    rate = median(s.rate(node) + slope * (now - s.at.timestamp()) for s in known)
    sure = recent[-1].known(node) and len(known) >= 2
    where = "now and " if not recent[-1].known(node) else ""
    return _Level(
        rate,
        OLD_GAP_CONFIDENCE if sure else GAP_CONFIDENCE,
        f"external load not reported {where}in {gaps} of the last {len(recent)} samples; "
        f"believed {rate:.1f} rps from the samples that have it (a gap is unknown, not zero)",
    )


def _external_slopes(window: Sequence[Sample], entries: Sequence[str]) -> dict[str, float]:
    slopes: dict[str, float] = {}
    for node in entries:
        points = [(s.at.timestamp(), s.rate(node)) for s in window if s.known(node)]
        slopes[node] = significant_slope(points)
    return slopes


def _blast_radius(
    order: Sequence[str], out: Mapping[str, Sequence[tuple[str, float]]], ext: Mapping[str, float]
) -> dict[str, float]:
    # Bitsets of the entry nodes whose traffic can reach each node: one pass in topological order.
    entries = [n for n in order if ext.get(n, 0.0) > 0]
    bit = {n: 1 << i for i, n in enumerate(entries)}
    reach = {n: bit.get(n, 0) for n in order}
    for n in order:
        for target, ratio in out.get(n, ()):
            if ratio > 0:
                reach[target] |= reach[n]
    total = sum(ext[e] for e in entries)
    if total <= 0:
        return dict.fromkeys(order, 0.0)
    # The load behind a bitset, a byte at a time: per byte of entries a table of the 256 subset
    # sums, so a node costs entries/8 lookups (in C) instead of a Python test per entry.
    tables: list[list[float]] = []
    for start in range(0, len(entries), 8):
        rates = [ext[e] for e in entries[start : start + 8]]
        table = [0.0] * 256
        for b in range(1, 256):
            low = b & -b
            table[b] = table[b ^ low] + rates[low.bit_length() - 1] if low.bit_length() <= len(rates) else 0.0
        tables.append(table)
    width = len(tables)
    return {n: math.fsum(map(list.__getitem__, tables, reach[n].to_bytes(width, "little"))) / total for n in order}


def _quality(
    snapshot: Snapshot,
    capacity: Mapping[str, float],
    demand: Mapping[str, float],
    arrivals: Mapping[str, float],
    tolerance: float,
) -> tuple[dict[str, list[DataIssue]], set[str]]:
    """Data issues per node, and the nodes whose observed arrivals contradict the graph's demand."""
    issues: dict[str, list[DataIssue]] = {}
    arrivals_off: set[str] = set()
    for n in snapshot.nodes:
        m = n.metrics
        found: list[DataIssue] = []
        missing = [f for f in ("arrival_rate", "throughput", "utilization") if getattr(m, f) is None]
        if missing:
            found.append(
                DataIssue(node=n.id, problem="missing_metrics", detail=f"node {n.id!r}: no {', '.join(missing)}")
            )
        cap = capacity[n.id]
        if m.throughput is not None and m.throughput > cap * (1 + tolerance) + 1e-6:
            found.append(
                DataIssue(
                    node=n.id,
                    problem="contradiction",
                    detail=f"node {n.id!r}: observed throughput {m.throughput:.1f} rps exceeds capacity {cap:.1f} rps",
                )
            )
        if m.arrival_rate is not None:
            a, d = arrivals[n.id], demand[n.id]
            off_a = abs(m.arrival_rate - a) > tolerance * max(a, 1.0)
            off_d = abs(m.arrival_rate - d) > tolerance * max(d, 1.0)
            if off_a and off_d:
                arrivals_off.add(n.id)
                found.append(
                    DataIssue(
                        node=n.id,
                        problem="contradiction",
                        detail=(
                            f"node {n.id!r}: observed arrivals {m.arrival_rate:.1f} rps match neither the graph's "
                            f"throttled arrivals {a:.1f} nor its demand {d:.1f} (tolerance {tolerance:.0%})"
                        ),
                    )
                )
        if found:
            issues[n.id] = found
    return issues, arrivals_off


_ISSUE_CONFIDENCE = {
    "missing_metrics": 0.8,
    "contradiction": 0.5,
    "missing_series": SOURCE_ISSUE_CONFIDENCE,
    "stale_series": SOURCE_ISSUE_CONFIDENCE,
    "ambiguous_series": SOURCE_ISSUE_CONFIDENCE,
}


_SOURCE_PROBLEMS: dict[str, Literal["missing_series", "stale_series", "ambiguous_series"]] = {
    "missing": "missing_series",
    "stale": "stale_series",
    "ambiguous": "ambiguous_series",
}


def _source_issues(snapshot: Snapshot) -> dict[str, list[DataIssue]]:
    """The source's own quality issues, per node, as data issues."""
    issues: dict[str, list[DataIssue]] = {}
    for q in snapshot.quality:
        issues.setdefault(q.node, []).append(
            DataIssue(
                node=q.node,
                problem=_SOURCE_PROBLEMS[q.problem],
                detail=f"node {q.node!r}: {q.metric} {q.problem} at the source: {q.detail}",
            )
        )
    return issues


def _inherited_doubt(
    order: Sequence[str],
    snapshot: Snapshot,
    levels: Mapping[str, _Level],
    arrivals_off: set[str],
) -> dict[str, tuple[float, str]]:
    """Per node, the lowest confidence of the load data its demand flows from upstream, and where.

    A node passes on its own load gap, a contradiction between its observed arrivals and the
    graph, and a source quality issue on its external load or an edge into it (the demand it
    sends on is then in doubt); a capacity contradiction stays with it.
    """
    demand_doubt = {q.node for q in snapshot.quality if q.metric in _DEMAND_METRICS}
    preds: dict[str, list[str]] = {n: [] for n in order}
    for e in snapshot.edges:
        if e.ratio > 0:
            preds[e.target].append(e.source)
    passes: dict[str, tuple[float, str]] = {}
    inherited: dict[str, tuple[float, str]] = {}
    for n in order:
        mine = min(((passes[u][0], passes[u][1]) for u in preds[n]), default=(1.0, ""))
        inherited[n] = mine
        own = levels[n].confidence
        if n in arrivals_off:
            own = min(own, _ISSUE_CONFIDENCE["contradiction"])
        if n in demand_doubt:
            own = min(own, SOURCE_ISSUE_CONFIDENCE)
        passes[n] = (own, repr(n)) if own < mine[0] else mine
    return inherited


def revise(
    beliefs: Beliefs | Memory | None,
    snapshot: Snapshot,
    history: Sequence[Snapshot] = (),
    *,
    desires: Desires | None = None,
    now: datetime | None = None,
) -> Beliefs:
    """New beliefs from the previous ones (or their `Memory`), a fresh snapshot and (optionally) older snapshots.

    Never raises on a valid snapshot: poor data lowers confidence and is reported in
    `data_issues`. `now` (from the caller's clock, e.g. `workflow.now()`) enables the
    staleness check; without it only a snapshot not newer than the last one is stale.
    """
    desires = desires or Desires()
    ids = [n.id for n in snapshot.nodes]
    order = topological_order(ids, [(e.source, e.target) for e in snapshot.edges])
    out = out_edges_of(snapshot)
    reported = {n.id: n.external_arrival_rate for n in snapshot.nodes}
    cap = {n.id: n.replicas * n.capacity_per_replica for n in snapshot.nodes}
    window = _window(beliefs, history, snapshot)
    entries = {n for s in window for n in (*s.external, *s.missing)}
    ext_slopes = _external_slopes(window, [n for n in order if reported[n] or n in entries])
    levels = {
        n: _level(window, n, reported[n], ext_slopes.get(n, 0.0)) if n in entries else _Level(reported[n] or 0.0)
        for n in order
    }
    ext = {n: lv.rate for n, lv in levels.items()}
    flow = propagate(order, ext, out, cap)
    slope_flow = propagate(order, ext_slopes, out, dict.fromkeys(order, math.inf))
    blast = _blast_radius(order, out, ext)

    issues: list[DataIssue] = []
    stale_reasons: list[str] = []
    if beliefs is not None and beliefs.twin_id == snapshot.twin_id and snapshot.observed_at <= beliefs.observed_at:
        stale_reasons.append(
            f"snapshot observed at {snapshot.observed_at.isoformat()} is not newer than the last one "
            f"({beliefs.observed_at.isoformat()})"
        )
    if now is not None:
        age = (now - snapshot.observed_at).total_seconds()
        if age > desires.max_snapshot_age_seconds:
            stale_reasons.append(f"snapshot is {age:.0f}s old (max {desires.max_snapshot_age_seconds:.0f}s)")
    for reason in stale_reasons:
        issues.append(DataIssue(node=None, problem="stale", detail=reason))
    stale = bool(stale_reasons)
    per_node, arrivals_off = _quality(snapshot, cap, flow.demand, flow.arrivals, desires.contradiction_tolerance)
    for n, lv in levels.items():
        if lv.gap is not None:
            per_node.setdefault(n, []).insert(
                0, DataIssue(node=n, problem="missing_load", detail=f"node {n!r}: {lv.gap}")
            )
    for n, found in _source_issues(snapshot).items():
        per_node.setdefault(n, []).extend(found)
    inherited = _inherited_doubt(order, snapshot, levels, arrivals_off)

    # A node with demand and no replicas has infinite utilization; a large finite stand-in keeps
    # the models JSON-safe and still sorts it first.
    rho = {n: min(flow.utilization(n), RHO_CAP) for n in order}
    preds: dict[str, list[str]] = {n: [] for n in order}
    for e in snapshot.edges:
        preds[e.target].append(e.source)
    upstream_sat: dict[str, bool] = {}
    for n in order:
        upstream_sat[n] = any(rho[u] >= 1.0 or upstream_sat[u] for u in preds[n])

    nodes: dict[str, NodeBelief] = {}
    for node in snapshot.nodes:
        n = node.id
        d, c, a = flow.demand[n], cap[n], flow.arrivals[n]
        throttled = d > a * (1 + 1e-9) + 1e-9
        evidence = [
            Evidence(
                source="graph",
                statement=(
                    f"offered demand {d:.1f} rps vs capacity {c:.1f} rps "
                    f"({node.replicas} x {node.capacity_per_replica:g}): utilization {rho[n]:.2f}"
                ),
            )
        ]
        if throttled:
            evidence.append(
                Evidence(
                    source="graph",
                    statement=f"only {a:.1f} rps arrive: {d - a:.1f} rps are held back by a saturated upstream node",
                )
            )
        if ext[n] != (reported[n] or 0.0) and levels[n].gap is None:
            evidence.append(
                Evidence(
                    source="history",
                    statement=(
                        f"external load {ext[n]:.1f} rps (median of the last {LEVEL_SAMPLES} samples; "
                        f"latest {reported[n] or 0.0:.1f})"
                    ),
                )
            )
        if node.metrics.utilization is not None:
            evidence.append(
                Evidence(source="snapshot", statement=f"observed utilization {node.metrics.utilization:.2f}")
            )
        d_slope = slope_flow.demand[n]
        if d_slope != 0.0:
            evidence.append(
                Evidence(
                    source="history",
                    statement=f"demand trend {d_slope * 60:+.1f} rps/min (Theil-Sen over {len(window)} samples)",
                )
            )
        confidence = 1.0
        for issue in per_node.get(n, ()):
            confidence *= (
                _ISSUE_CONFIDENCE.get(issue.problem, 0.5) if issue.problem != "missing_load" else levels[n].confidence
            )
            evidence.append(
                Evidence(source="history" if issue.problem == "missing_load" else "snapshot", statement=issue.detail)
            )
            issues.append(issue)
        doubt, origin = inherited[n]
        if doubt < 1.0:
            confidence *= doubt
            evidence.append(
                Evidence(
                    source="graph",
                    statement=(
                        f"its demand flows from {origin}, whose load data is missing or contradictory "
                        f"(confidence {doubt:.2f}): the demand above is an estimate"
                    ),
                )
            )
        if stale:
            confidence *= 0.3
        nodes[n] = NodeBelief(
            node=n,
            kind=node.kind,
            tags=dict(node.tags),
            replicas=node.replicas,
            min_replicas=node.min_replicas,
            max_replicas=node.max_replicas,
            capacity_per_replica=node.capacity_per_replica,
            capacity=c,
            external_rate=ext[n],
            demand=d,
            demand_utilization=rho[n],
            arrivals=a,
            throttled=throttled,
            upstream_saturated=upstream_sat[n],
            external_slope=ext_slopes.get(n, 0.0),
            demand_slope=d_slope,
            utilization_slope=d_slope / c if c > 0 else 0.0,
            blast_radius=blast[n],
            observed=node.metrics,
            confidence=confidence,
            evidence=tuple(evidence),
        )
    loaded = [n for n in order if flow.demand[n] > 0]
    position = {n: i for i, n in enumerate(order)}
    constraint = max(loaded, key=lambda n: (rho[n], -position[n])) if loaded else None
    return Beliefs(
        twin_id=snapshot.twin_id,
        observed_at=snapshot.observed_at,
        snapshot=snapshot,
        order=tuple(order),
        nodes=nodes,
        constraint=constraint,
        data_issues=tuple(issues),
        window=window,
        stale=stale,
        confidence=min((b.confidence for b in nodes.values()), default=1.0),
    )
