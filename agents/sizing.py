"""Sizing: how much demand a node carries on a number of replicas, and the fewest replicas for a demand.

A node's goals bound the demand its replicas may carry: the target utilization (headroom)
and, where the desires give one, its latency SLO. The SLO bound is the M/M/c queueing model
the simulator and the what-if engine use (twin.queueing): the largest arrival rate whose p95
response time stays within the SLO. Few replicas need more headroom than the target gives
(a two-replica node at 80% waits longer than a twelve-replica one at 90%), many need less;
sizing for both is what lets a forecasting agent run large nodes hotter and keep small ones safe.
"""

from __future__ import annotations

import functools
import math

from twin.queueing import response_time_p95

__all__ = ["attainable", "carried", "replicas_for", "slo_carried"]

EPS = 1e-9
_BISECTIONS = 40


@functools.lru_cache(maxsize=16384)
def slo_carried(replicas: int, mu: float, slo_ms: float) -> float:
    """Largest arrival rate (rps) `replicas` servers of rate `mu` serve with p95 response time <= `slo_ms`.

    0 when even an idle server's p95 exceeds the SLO (the service time alone is too slow).
    """
    if replicas <= 0 or mu <= 0:
        return 0.0
    slo = slo_ms / 1000.0
    if response_time_p95(replicas, 0.0, mu) > slo:
        return 0.0
    lo, hi = 0.0, replicas * mu * (1.0 - 1e-9)
    if response_time_p95(replicas, hi, mu) <= slo:
        return hi
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2.0
        if response_time_p95(replicas, mid, mu) <= slo:
            lo = mid
        else:
            hi = mid
    return lo


def attainable(mu: float, slo_ms: float | None) -> bool:
    """Whether replicas can meet the SLO at all: an idle server's p95 (about 3 mean service times) is
    within it. A slower service needs a faster release, not more replicas: sizing then ignores the SLO
    (the plan's latency goal says it stays unmet) rather than scale to max_replicas for nothing."""
    return slo_ms is not None and mu > 0 and response_time_p95(1, 0.0, mu) <= slo_ms / 1000.0


def carried(replicas: int, mu: float, target: float, slo_ms: float | None = None) -> float:
    """Demand `replicas` carry within the target utilization and (if given and attainable) the latency SLO."""
    bound = target * replicas * mu
    if slo_ms is not None and attainable(mu, slo_ms):
        bound = min(bound, slo_carried(replicas, mu, slo_ms))
    return bound


def replicas_for(demand: float, target: float, mu: float, lo: int, hi: int, slo_ms: float | None = None) -> int:
    """Fewest replicas in [lo, hi] that carry `demand` (see `carried`); `hi` when none do.

    When even `hi` replicas cannot carry it within the SLO, the SLO is left to the plan's goals to report
    and the count is the target's: scaling to the ceiling would not meet the SLO either.
    """
    need = math.ceil(demand / (target * mu) - EPS) if demand > 0 else 0
    need = max(lo, min(hi, need))
    if slo_ms is None or demand <= 0 or not attainable(mu, slo_ms) or slo_carried(hi, mu, slo_ms) < demand - EPS:
        return need
    while need < hi and slo_carried(need, mu, slo_ms) < demand - EPS:
        need += 1
    return need
