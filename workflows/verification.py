"""Did the fix work? Compare a fresh snapshot with what the plan promised. Pure; runs inside an activity."""

from __future__ import annotations

from typing import Any

from agents import Proposal
from twin.actions import RateLimitAction
from twin.contract import Snapshot
from twin.graph import snapshot_flow
from workflows.contracts import VerifyResult

# Below these the before/after difference is noise or the expected cost of un-throttling a
# downstream node (it now sees its real demand), not a regression.
_ERROR_RATE_FLOOR = 0.01
_LATENCY_FLOOR_MS = 20.0
_LATENCY_RELATIVE = 0.5


def check_goals(
    proposal: Proposal, snapshot: Snapshot, tolerance: float, latency_slo_ms: dict[str, float] | None = None
) -> VerifyResult:
    """Every affected node at or under its target utilization (+tolerance), within its latency SLO,
    and no affected node worse than before (error rate, p95) beyond the tolerance."""
    slo = latency_slo_ms or {}
    flow = snapshot_flow(snapshot)
    limited = {a.node for a in proposal.actions if isinstance(a, RateLimitAction)}
    before = {b.node: b for b in proposal.beliefs_used}
    findings: list[str] = []
    nodes: dict[str, dict[str, Any]] = {}
    worse = False
    for name, promise in proposal.plan.predicted.items():
        try:
            node = snapshot.node(name)
        except KeyError:
            findings.append(f"node {name!r} is missing from the snapshot")
            continue
        m = node.metrics
        # A rate-limited node's demand includes what it sheds; its observed utilization is what it carries.
        rho = (m.utilization or 0.0) if name in limited else flow.utilization(name)
        ceiling = promise.target_utilization + tolerance
        nodes[name] = {"utilization": round(rho, 4), "target": promise.target_utilization, "replicas": node.replicas}
        if rho > ceiling:
            findings.append(f"node {name!r}: utilization {rho:.2f} above target {promise.target_utilization:.2f}")
        if name in slo and m.latency_p95_ms is not None:
            nodes[name]["latency_p95_ms"] = m.latency_p95_ms
            if m.latency_p95_ms > slo[name] * (1 + tolerance):
                findings.append(f"node {name!r}: p95 {m.latency_p95_ms:.0f} ms above SLO {slo[name]:.0f} ms")
        prior = before.get(name)
        if prior is None:
            continue
        e0, e1 = prior.observed.error_rate, m.error_rate
        if e0 is not None and e1 is not None and e1 > max(e0 * (1 + tolerance), e0 + _ERROR_RATE_FLOOR):
            worse = True
            findings.append(f"node {name!r}: error rate rose from {e0:.3f} to {e1:.3f}")
        l0, l1 = prior.observed.latency_p95_ms, m.latency_p95_ms
        if l0 is not None and l1 is not None and l1 > l0 * (1 + _LATENCY_RELATIVE) + _LATENCY_FLOOR_MS:
            worse = True
            findings.append(f"node {name!r}: p95 rose from {l0:.0f} ms to {l1:.0f} ms")
    return VerifyResult(met=not findings, worse=worse, observed_at=snapshot.observed_at, findings=findings, nodes=nodes)
