"""Detection: findings (present, predicted, latency, data quality) and the constraint."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime

from agents._frozen import Frozen
from agents.beliefs import Beliefs, Evidence, NodeBelief
from agents.desires import Desires
from agents.sizing import carried


class FindingKind(StrEnum):
    """What is wrong, most urgent first."""

    SATURATED = "saturated"
    AT_RISK = "at_risk"
    PREDICTED = "predicted"
    LATENCY_SLO = "latency_slo"
    DATA_QUALITY = "data_quality"
    ALERT = "alert"
    """An outside detector (Alertmanager) fired on the node: evidence, never a reason to act by itself."""


_URGENCY = {kind: i for i, kind in enumerate(FindingKind)}

CAPACITY_KINDS = frozenset({FindingKind.SATURATED, FindingKind.AT_RISK, FindingKind.PREDICTED})
"""Findings that capacity (scaling, shedding, shifting) can fix."""


class Finding(Frozen):
    """One thing the agent thinks is wrong, with the numbers and the evidence behind it."""

    kind: FindingKind
    node: str | None
    demand_utilization: float | None = None
    target_utilization: float | None = None
    eta_seconds: float | None = None
    """For `predicted`: seconds until the trend crosses the target."""
    hidden: bool = False
    """The node's own metrics look healthier than its demand: an upstream constraint hides it."""
    message: str
    evidence: tuple[Evidence, ...] = ()
    confidence: float = 1.0
    """Confidence of the belief the finding rests on; below `agents.beliefs.TRUSTED_CONFIDENCE` nothing acts on it."""


class Detection(Frozen):
    """All findings of one snapshot and the constraint (highest demand utilization)."""

    twin_id: str
    observed_at: AwareDatetime
    constraint: str | None
    findings: tuple[Finding, ...]

    def of_kind(self, *kinds: FindingKind) -> tuple[Finding, ...]:
        """Findings of the given kinds, in detection order."""
        return tuple(f for f in self.findings if f.kind in kinds)

    def capacity_nodes(self) -> set[str]:
        """Nodes with a finding capacity can fix (saturated, at risk, predicted)."""
        return {f.node for f in self.findings if f.kind in CAPACITY_KINDS and f.node is not None}


def _limit(b: NodeBelief, target: float, slo_ms: float | None) -> str:
    """What the node's replicas may carry, in words: the target, or the latency SLO where it binds first."""
    bound = carried(b.replicas, b.capacity_per_replica, target, slo_ms)
    if slo_ms is not None and bound < target * b.capacity - 1e-9:
        return f"what {b.replicas} replicas carry within its {slo_ms:.0f} ms p95 SLO ({bound:,.0f} rps)"
    return f"its {target:.0%} target"


def _finding(
    b: NodeBelief,
    target: float,
    kind: FindingKind,
    message: str,
    *,
    hidden: bool | None = None,
    eta: float | None = None,
) -> Finding:
    """A finding about one node, carrying its belief's numbers, evidence and confidence."""
    return Finding(
        kind=kind,
        node=b.node,
        demand_utilization=b.demand_utilization,
        target_utilization=target,
        eta_seconds=eta,
        hidden=b.throttled if hidden is None else hidden,
        message=message,
        evidence=b.evidence,
        confidence=b.confidence,
    )


def detect(beliefs: Beliefs, desires: Desires | None = None) -> Detection:
    """Findings for every node: saturated (rho >= 1), at_risk (rho >= target), predicted (the
    forecast's upper band crosses the target within the planning window, or without a forecast
    the rising trend crosses it within the horizon), latency_slo (observed p95 over its SLO),
    data_quality (stale, missing or contradictory data). One capacity finding per node at most."""
    desires = desires or Desires()
    snapshot = beliefs.snapshot
    findings: list[Finding] = []
    for node in snapshot.nodes:
        b = beliefs.nodes[node.id]
        target = desires.target_for(node)
        rho = b.demand_utilization
        hidden_note = " (hidden: its own metrics show only throttled arrivals)" if b.throttled else ""
        if not b.trusted:
            hidden_note += f" (low confidence {b.confidence:.2f}: estimated from missing or contradictory data)"
        if rho >= 1.0:
            message = f"{node.id} is saturated: demand {b.demand:.0f} rps on capacity {b.capacity:.0f}{hidden_note}"
            findings.append(_finding(b, target, FindingKind.SATURATED, message))
        elif rho >= target:
            message = f"{node.id} runs at {rho:.0%} of capacity, over its {target:.0%} target{hidden_note}"
            findings.append(_finding(b, target, FindingKind.AT_RISK, message))
        elif b.forecast is not None:
            # The forecast replaces the trend where it exists: the upper band crossing the target.
            crossing = b.forecast.crossing_at
            if crossing is not None:
                eta = max(0.0, (crossing - beliefs.observed_at).total_seconds())
                limit = _limit(b, target, desires.latency_slo_ms.get(node.id))
                message = (
                    f"{node.id} will cross {limit} at {crossing:%H:%M} (in about {eta / 60:.0f} min): "
                    f"{b.forecast.sentence()}"
                )
                findings.append(_finding(b, target, FindingKind.PREDICTED, message, eta=eta))
        elif b.demand_slope > 0 and b.capacity > 0:
            eta = (target * b.capacity - b.demand) / b.demand_slope
            if eta <= desires.horizon_seconds:
                message = (
                    f"{node.id} will cross its {target:.0%} target in about {eta / 60:.0f} min "
                    f"(demand rising {b.demand_slope * 60:.1f} rps/min)"
                )
                findings.append(_finding(b, target, FindingKind.PREDICTED, message, eta=max(0.0, eta)))
        slo = desires.latency_slo_ms.get(node.id)
        p95 = node.metrics.latency_p95_ms
        if slo is not None and p95 is not None and p95 > slo:
            message = f"{node.id} p95 latency {p95:.0f} ms is over its {slo:.0f} ms SLO"
            findings.append(_finding(b, target, FindingKind.LATENCY_SLO, message, hidden=False))
    for issue in beliefs.data_issues:
        findings.append(
            Finding(
                kind=FindingKind.DATA_QUALITY,
                node=issue.node,
                message=f"data quality ({issue.problem}): {issue.detail}",
                evidence=(Evidence(source="snapshot", statement=issue.detail),),
                confidence=beliefs.nodes[issue.node].confidence if issue.node in beliefs.nodes else beliefs.confidence,
            )
        )
    findings.sort(key=lambda f: (_URGENCY[f.kind], -(f.demand_utilization or 0.0), f.node or ""))
    return Detection(
        twin_id=beliefs.twin_id,
        observed_at=beliefs.observed_at,
        constraint=beliefs.constraint,
        findings=tuple(findings),
    )
