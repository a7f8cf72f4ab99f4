"""The forecast in the beliefs: each node's demand outlook over the planning window.

Demand is forecast at the entry nodes (agents/forecast.py, from the stored history of their
demand) and carried through the graph with the reference semantics, as beliefs carry today's
demand: an inner node's demand is the graph's function of the entries', so forecasting it on
its own would add a second, noisier opinion that could contradict the graph.

A node gets an outlook only when every entry feeding it has a seasonal forecast and a trusted
belief; otherwise the agent plans as before (trend and hysteresis). The window is the longest
readiness delay plus the cool-down: a plan made now must hold until a later one could be
ready.
"""

from __future__ import annotations

import math
from datetime import timedelta

from agents.beliefs import Beliefs
from agents.desires import Desires
from agents.forecast import DemandHistory, DemandOutlook, NodeForecast, forecast
from agents.sizing import carried
from twin.graph import out_edges_of, propagate

__all__ = [
    "URGENT_SLACK_SECONDS",
    "entry_forecasts",
    "eta_seconds",
    "hold_window",
    "peak_upper_through_graph",
    "planning_window",
    "with_outlook",
]

URGENT_SLACK_SECONDS = 60.0
"""A predicted crossing within a node's readiness delay plus this is urgent: capacity ordered any
later would not be ready in time, so it overrides the node's cool-down (as saturation does)."""


def planning_window(beliefs: Beliefs, desires: Desires) -> float:
    """Seconds a plan must hold: the longest readiness delay of the twin plus the cool-down."""
    slowest = max((desires.readiness_for(n) for n in beliefs.snapshot.nodes), default=desires.readiness_seconds)
    return slowest + desires.cooldown_seconds


def hold_window(beliefs: Beliefs, desires: Desires) -> float:
    """Seconds a scale-down must hold: the longest readiness delay plus the longer of the cool-down and
    `scale_down_hold_seconds` (no scale-down the forecast says would be undone within that time)."""
    slowest = max((desires.readiness_for(n) for n in beliefs.snapshot.nodes), default=desires.readiness_seconds)
    return slowest + max(desires.cooldown_seconds, desires.scale_down_hold_seconds)


def entry_forecasts(
    beliefs: Beliefs, history: DemandHistory, *, horizon_seconds: float, band_lead_seconds: float | None = None
) -> dict[str, NodeForecast]:
    """Seasonal forecasts of the external load at the graph's entries (trusted nodes with no inflow).

    An entry idle right now is forecast too when it has history: its load may be minutes away.
    """
    fed: set[str] = {e.target for e in beliefs.snapshot.edges if e.ratio > 0}
    # History holds each node's offered demand; for an entry without inflow that is its external load.
    candidates = [
        n
        for n in beliefs.order
        if n not in fed and beliefs.nodes[n].trusted and (beliefs.nodes[n].external_rate > 0 or history.of(n))
    ]
    return {
        n: f
        for n, f in forecast(
            history,
            beliefs.observed_at,
            candidates,
            current={n: beliefs.nodes[n].external_rate for n in candidates},
            horizon_seconds=horizon_seconds,
            band_lead_seconds=band_lead_seconds,
        ).items()
        if f.method != "trend"
    }


def _covered(beliefs: Beliefs, forecasts: dict[str, NodeForecast], history: DemandHistory) -> list[str]:
    """The nodes with demand whose every part comes from an entry with a seasonal forecast.

    An entry without one taints what it feeds even while idle now (when it ever carried load: it has
    history, or carries some now): its load may arrive within the window, unforecast.
    """
    order = list(beliefs.order)
    unlimited = dict.fromkeys(order, math.inf)
    fed: set[str] = {e.target for e in beliefs.snapshot.edges if e.ratio > 0}

    def doubt(n: str) -> float:
        b = beliefs.nodes[n]
        if n in forecasts:
            return 0.0
        if n not in fed and (b.external_rate > 0 or history.of(n)):
            return 1.0
        return b.external_rate

    base_ext = {n: doubt(n) for n in order}
    # Nodes reached by load that has no seasonal forecast keep planning as before.
    out = out_edges_of(beliefs.snapshot)
    doubtful = propagate(order, base_ext, out, unlimited)
    # Reached by a forecast entry's load (a node idle now may be about to get it).
    reached = propagate(order, {n: (1.0 if n in forecasts else 0.0) for n in order}, out, unlimited)
    return [n for n in order if doubtful.demand[n] <= 1e-9 and reached.demand[n] > 1e-12]


def peak_upper_through_graph(
    beliefs: Beliefs, history: DemandHistory | None, horizon_seconds: float
) -> dict[str, float]:
    """Per node, the forecast's upper band at its peak over the next `horizon_seconds` (rps), never under today's
    demand: each entry's seasonal forecast carried through the graph point by point, as `with_outlook` does.

    Only nodes whose every load has a seasonal forecast are in the answer (none without history, or when stale).
    """
    if history is None or beliefs.stale or not len(history):
        return {}
    forecasts = entry_forecasts(beliefs, history, horizon_seconds=horizon_seconds)
    if not forecasts:
        return {}
    covered = _covered(beliefs, forecasts, history)
    order = list(beliefs.order)
    out = out_edges_of(beliefs.snapshot)
    unlimited = dict.fromkeys(order, math.inf)
    base_ext = {n: beliefs.nodes[n].external_rate for n in order}
    peaks = {n: beliefs.nodes[n].demand for n in covered}
    for k, point in enumerate(next(iter(forecasts.values())).points):
        upper = dict(base_ext)
        for n, f in forecasts.items():
            p = f.points[k] if k < len(f.points) and f.points[k].at == point.at else f.at_time(point.at)
            upper[n] = p.upper
        flow = propagate(order, upper, out, unlimited).demand
        for n in covered:
            peaks[n] = max(peaks[n], flow[n])
    return peaks


def with_outlook(beliefs: Beliefs, history: DemandHistory | None, desires: Desires) -> Beliefs:
    """`beliefs` with `NodeBelief.forecast` set where the history supports a seasonal forecast."""
    if history is None or not desires.forecast or beliefs.stale or not len(history):
        return beliefs
    snapshot = beliefs.snapshot
    order = list(beliefs.order)
    out = out_edges_of(snapshot)
    window = planning_window(beliefs, desires)
    hold = hold_window(beliefs, desires)
    now = beliefs.observed_at
    forecasts = entry_forecasts(beliefs, history, horizon_seconds=max(window, hold), band_lead_seconds=window)
    if not forecasts:
        return beliefs
    unlimited = dict.fromkeys(order, math.inf)
    base_ext = {n: beliefs.nodes[n].external_rate for n in order}
    covered = _covered(beliefs, forecasts, history)
    if not covered:
        return beliefs
    # The curves through the graph, point by point (upper band and expected value)...
    end = now + timedelta(seconds=window)
    times = [p.at for p in next(iter(forecasts.values())).points if p.at <= end]
    upper_flows = []
    mean_flows = []
    for k, t in enumerate(times):
        upper = dict(base_ext)
        mean = dict(base_ext)
        for n, f in forecasts.items():
            p = f.points[k] if k < len(f.points) and f.points[k].at == t else f.at_time(t)
            upper[n] = p.upper
            mean[n] = p.mean
        upper_flows.append(propagate(order, upper, out, unlimited).demand)
        mean_flows.append(propagate(order, mean, out, unlimited).demand)
    # ...and the planning load: each entry at its own peak over the window, never under now.
    # A scale-down must also carry the upper band's peak over the (longer) hold window: one that the
    # band says may be taken back within the hold is churn (two actions, a readiness gap) for little.
    planning_ext = dict(base_ext)
    hold_ext = dict(base_ext)
    for n, f in forecasts.items():
        planning_ext[n] = max(base_ext[n], max(p.upper for p in f.window(now, end)))
        hold_ext[n] = max(planning_ext[n], max(p.upper for p in f.points))
    planning = propagate(order, planning_ext, out, unlimited).demand
    holding = propagate(order, hold_ext, out, unlimited).demand
    band = max(f.band for f in forecasts.values())
    days = min(f.days_of_history for f in forecasts.values())
    method = "seasonal_weekly" if all(f.method == "seasonal_weekly" for f in forecasts.values()) else "seasonal_daily"
    nodes = dict(beliefs.nodes)
    by_id = {n.id: n for n in snapshot.nodes}
    for n in covered:
        b = beliefs.nodes[n]
        k = max(range(len(times)), key=lambda i: (upper_flows[i][n], -i))
        limit = carried(b.replicas, b.capacity_per_replica, desires.target_for(by_id[n]), desires.latency_slo_ms.get(n))
        crossing = next(
            (times[i] for i in range(len(times)) if max(upper_flows[i][n], 0.0) > limit + 1e-9 and b.capacity > 0),
            None,
        )
        outlook = DemandOutlook(
            method=method,
            days_of_history=days,
            band=band,
            window_seconds=window,
            current_rps=b.demand,
            peak_rps=mean_flows[k][n],
            peak_upper_rps=upper_flows[k][n],
            peak_at=times[k],
            planning_rps=max(b.demand, planning[n]),
            hold_seconds=hold,
            hold_rps=max(b.demand, planning[n], holding[n]),
            crossing_at=crossing,
            external_rps=planning_ext[n] if n in forecasts else None,
        )
        nodes[n] = b.model_copy(update={"forecast": outlook})
    return beliefs.model_copy(update={"nodes": nodes})


def eta_seconds(outlook: DemandOutlook, beliefs: Beliefs) -> float | None:
    """Seconds from the beliefs' moment to the predicted crossing (None: none in the window)."""
    if outlook.crossing_at is None:
        return None
    return max(0.0, (outlook.crossing_at - beliefs.observed_at) / timedelta(seconds=1))
