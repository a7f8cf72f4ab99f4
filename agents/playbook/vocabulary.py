"""What playbook expressions may name: beliefs about one node, and the whitelisted functions.

A name is a number believed about the target node (`agents.beliefs.NodeBelief`, its observed
metrics, and its forecast outlook where one exists). Functions are pure math (`min`, `ceil`, ...)
and node functions computed from the belief (`optimal_replicas`, `forecast_peak_rps`, ...).
Parsing checks names and calls against `BELIEF_NAMES` and `SIGNATURES`; evaluation takes its
values from `belief_values` and its implementations from `node_functions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from agents.beliefs import NodeBelief
from agents.playbook.errors import EvaluationError
from agents.playbook.expr import Function, Signature
from agents.sizing import replicas_for

__all__ = [
    "BELIEF_NAMES",
    "HISTORY_NAMES",
    "MATH_FUNCTIONS",
    "SIGNATURES",
    "PeakForecast",
    "belief_values",
    "node_functions",
]

BELIEF_NAMES: dict[str, str] = {
    "replicas": "replicas now",
    "min_replicas": "the node's lowest replica count",
    "max_replicas": "the node's highest replica count",
    "capacity_per_replica": "completions per second one replica sustains",
    "capacity": "replicas x capacity_per_replica (rps)",
    "external_rate": "load offered from outside the graph at this node (rps)",
    "demand": "offered demand through the graph (rps)",
    "demand_utilization": "demand / capacity (may exceed 1)",
    "arrivals": "arrivals the node actually sees, throttled upstream (rps)",
    "demand_slope": "slope of offered demand (rps per second)",
    "utilization_slope": "slope of demand utilization at current capacity (per second)",
    "blast_radius": "share of all external traffic that passes through the node (0..1)",
    "confidence": "how sure the beliefs about the node are (0..1)",
    "observed_arrival_rate": "metric: arrival rate (rps)",
    "observed_throughput": "metric: throughput (rps)",
    "observed_utilization": "metric: utilization",
    "observed_queue_depth": "metric: queue depth",
    "observed_latency_p95_ms": "metric: p95 latency (ms)",
    "observed_error_rate": "metric: share of requests failing (0..1)",
    "forecast_current_rps": "forecast: demand now (rps)",
    "forecast_peak_rps": "forecast: expected demand at the planning window's peak (rps)",
    "forecast_peak_upper_rps": "forecast: the band's upper edge at that peak (rps)",
    "forecast_planning_rps": "forecast: demand capacity is sized for over the planning window (rps)",
    "forecast_band": "forecast: relative half-width of the band",
}
"""Every name an expression may use, with what it means. A metric or forecast the node lacks has no value."""


def _variadic(f: Callable[..., float]) -> Function:
    return lambda args, _kw: float(f(args))


def _unary(f: Callable[[float], float]) -> Function:
    return lambda args, _kw: float(f(args[0]))


HISTORY_NAMES: dict[str, str] = {
    "demand": "offered demand in the bucket (rps)",
    "demand_utilization": "the bucket's demand / today's capacity",
    "capacity": "today's capacity (rps)",
    "capacity_per_replica": BELIEF_NAMES["capacity_per_replica"],
    "min_replicas": BELIEF_NAMES["min_replicas"],
    "max_replicas": BELIEF_NAMES["max_replicas"],
}
"""The names a held condition (`EXPR for 2h`) may use: what the demand history gives for each past bucket,
and the node's configuration. Utilization is over today's capacity. Only `MATH_FUNCTIONS` may be called."""

MATH_FUNCTIONS: dict[str, Function] = {
    "min": _variadic(min),
    "max": _variadic(max),
    "ceil": _unary(math.ceil),
    "floor": _unary(math.floor),
    "round": _unary(lambda x: math.floor(x + 0.5)),  # half up, not Python's half to even
    "abs": _unary(abs),
}

SIGNATURES: dict[str, Signature] = {
    "min": Signature((2, 16), doc="the smallest of its arguments"),
    "max": Signature((2, 16), doc="the largest of its arguments"),
    "ceil": Signature((1, 1), doc="rounded up to a whole number"),
    "floor": Signature((1, 1), doc="rounded down to a whole number"),
    "round": Signature((1, 1), doc="rounded to the nearest whole number (halves up)"),
    "abs": Signature((1, 1), doc="without its sign"),
    "optimal_replicas": Signature(
        required=("target",),
        optional=("demand",),
        doc="fewest replicas (within min..max) that carry `demand` (default: the node's demand, or its "
        "forecast planning demand when higher) at utilization `target`",
    ),
    "forecast_peak_rps": Signature(
        required=("next",), doc="the forecast's upper band at its peak over the next `next` seconds (rps)"
    ),
    "forecast_peak_utilization": Signature(
        required=("next",), doc="forecast_peak_rps(next=...) / capacity at the current replicas"
    ),
}
"""Every function an expression may call, with its arity and keywords."""

PeakForecast = Callable[[float], float]
"""The upper band's peak demand (rps) over the next `seconds`, for one node; supplied by the runner."""


def belief_values(belief: NodeBelief) -> dict[str, float]:
    """The numbers `BELIEF_NAMES` name, for one node; metrics it lacks and a missing forecast are left out."""
    values: dict[str, float] = {
        "replicas": belief.replicas,
        "min_replicas": belief.min_replicas,
        "max_replicas": belief.max_replicas,
        "capacity_per_replica": belief.capacity_per_replica,
        "capacity": belief.capacity,
        "external_rate": belief.external_rate,
        "demand": belief.demand,
        "demand_utilization": belief.demand_utilization,
        "arrivals": belief.arrivals,
        "demand_slope": belief.demand_slope,
        "utilization_slope": belief.utilization_slope,
        "blast_radius": belief.blast_radius,
        "confidence": belief.confidence,
    }
    for metric, value in belief.observed.model_dump().items():
        if value is not None:
            values[f"observed_{metric}"] = float(value)
    if belief.forecast is not None:
        outlook = belief.forecast
        values |= {
            "forecast_current_rps": outlook.current_rps,
            "forecast_peak_rps": outlook.peak_rps,
            "forecast_peak_upper_rps": outlook.peak_upper_rps,
            "forecast_planning_rps": outlook.planning_rps,
            "forecast_band": outlook.band,
        }
    assert values.keys() <= BELIEF_NAMES.keys(), values.keys() - BELIEF_NAMES.keys()
    return {k: v for k, v in values.items() if math.isfinite(v)}


def node_functions(belief: NodeBelief, peak: PeakForecast | None = None) -> dict[str, Function]:
    """`MATH_FUNCTIONS` plus the node functions over `belief`.

    Without `peak`, a forecast over `next` seconds comes from the belief's outlook when `next` is within
    its planning window (its peak over the whole window: never less than the peak over a shorter one);
    longer horizons need `peak`.
    """

    def forecast_peak(args: tuple[float, ...], kw: Mapping[str, float]) -> float:
        seconds = kw["next"]
        if seconds <= 0:
            raise EvaluationError(f"forecast_peak_rps(next={seconds:g}): next must be more than 0 seconds")
        if peak is not None:
            return peak(seconds)
        outlook = belief.forecast
        if outlook is None or seconds > outlook.window_seconds:
            raise EvaluationError(f"no demand forecast for {belief.node!r} over the next {seconds:g} s")
        return max(outlook.current_rps, outlook.peak_upper_rps)

    def forecast_utilization(args: tuple[float, ...], kw: Mapping[str, float]) -> float:
        if belief.capacity <= 0:
            raise EvaluationError(f"{belief.node!r} has no capacity to divide by")
        return forecast_peak(args, kw) / belief.capacity

    def optimal(args: tuple[float, ...], kw: Mapping[str, float]) -> float:
        target = kw["target"]
        if not 0 < target <= 1:
            raise EvaluationError(f"optimal_replicas(target={target:g}): target must be in (0, 1]")
        if "demand" in kw:
            demand = kw["demand"]
        else:
            planned = belief.forecast.planning_rps if belief.forecast is not None else 0.0
            demand = max(belief.demand, planned)
        if demand < 0:
            raise EvaluationError(f"optimal_replicas(demand={demand:g}): demand must not be negative")
        if belief.capacity_per_replica <= 0:
            raise EvaluationError(f"{belief.node!r} has no capacity per replica")
        return replicas_for(demand, target, belief.capacity_per_replica, belief.min_replicas, belief.max_replicas)

    return MATH_FUNCTIONS | {
        "optimal_replicas": optimal,
        "forecast_peak_rps": forecast_peak,
        "forecast_peak_utilization": forecast_utilization,
    }
