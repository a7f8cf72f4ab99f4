"""Right-sizing in closed loop: the agent with forecasts against the HPA rule and perfect foresight.

Two days, each a scenario the controllers have not seen, run the same way for every controller
(same scenario, seed, 30 s control tick, dt = 30 s, and a 120 s readiness delay: a replica added
by a scale-up serves two minutes later, for everyone; snapshots report ready replicas, so a
controller may ask again for replicas already on their way: such a no-op is neither applied nor
counted):

- `diurnal_day`: 700 +- 500 rps at the gateway, a lunchtime spike, checkout losing half its
  replicas at 09:00, search at half capacity from 15:00 (twin/scenarios/diurnal_day.yaml).
- `shifting_day`: a weekend day after weekdays (150 rps lower all day), an unforecast slow ramp
  (+350 rps over 8 h), an unforecast 10-minute spike (+450 rps), catalog at 70% for two hours
  (twin/scenarios/shifting_day.yaml).

Controllers:
- none: the initial replicas all day.
- HPA rule per node (target 0.8, and again at 0.9): desired = ceil(ready x observed utilization /
  target) (the ready replicas carry the observed load), tolerance 0.1, a scale-up at once, a
  scale-down to the highest recommendation of the last 300 s; a scale-up already in flight is not
  asked again; a spec below min_replicas (replicas lost) is scaled back to it, as the Kubernetes
  controller does. Without that, replicas lost down to zero leave it no metric and the node dead.
- foresight: knows the true offered demand of the coming interval (noise-free) and sizes every
  node for its peak over the readiness delay plus one tick with the agent's goals (utilization
  ceiling 0.9 and each node's latency SLO), scaling down at once. It does not know faults before
  they happen (it reads capacity as the twin reports it).
- agent: `decide` with default desires except a utilization ceiling of 0.9 and each node's latency
  SLO (the one violations are counted against; below 0.9 it is the SLO that binds), readiness 120 s,
  cool-down 300 s, its proposals applied at once, and the demand history a controller has after a
  week in service:
  the 7 days before the measured day (t < 0 of the same scenario: noisy samples every tick,
  kept as 5-minute means), then what it records itself during the day.
- agent without forecast: the same agent without history (trend and hysteresis band only).

Figures: SLO-violation node-minutes (a node-minute with observed p95 over its SLO, the M/M/c p95
at 90% utilization on its initial replicas), replica-hours of provisioned replicas (pending
ones cost from the scale-up), actions, and for the agent forecast misses: a scale-down followed
by a scale-up of the same node within the cool-down. Forecast accuracy: every 5 minutes of the
measured day, the gateway's expected demand at the end of the planning window (7 min ahead)
against the true offered demand then (MAPE), for our seasonal forecast, the seasonal naive
forecast without level correction, and Holt-Winters (statsmodels ExponentialSmoothing, additive
daily season over the 5-minute history, refitted hourly) when statsmodels is installed.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents import AgentState, Desires, decide
from agents.forecast import BUCKET_SECONDS, DAY, DemandRecorder, forecast_node
from agents.sizing import replicas_for
from twin.actions import ScaleAction
from twin.contract import Snapshot
from twin.graph import propagate, topological_order
from twin.queueing import response_time_p95
from twin.scenario import Scenario, load_scenario
from twin.simulator import Simulator

NAME = "rightsizing"
SCENARIOS = Path(__file__).resolve().parent.parent / "twin" / "scenarios"
DAYS = ("diurnal_day", "shifting_day")
TARGET = 0.8
"""The HPA rule's target utilization (the configuration the agent is measured against)."""
AGENT_TARGET = 0.9
"""The agent's and foresight's utilization ceiling; each node's latency SLO bounds it further."""
TICK = 30.0
READINESS = 120.0
PRIOR_DAYS = 7
HPA_TOLERANCE = 0.1
HPA_STABILIZATION = 300.0
MODES = ("none", "hpa", "hpa_0.9", "foresight", "agent", "agent_no_forecast")
GOAL_VIOLATIONS = 0.5
GOAL_REPLICA_HOURS = 1.0
AIM_FORESIGHT = 1.10
DEAD_MINUTES = 30.0
"""A node without a ready replica for longer than this was left dead (not just waiting for readiness)."""


class Truth:
    """The scenario's true offered demand per node at any time (noise-free, through the graph)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        ids = [n.id for n in scenario.nodes]
        pairs = [(e.source, e.target) for e in scenario.edges]
        self.order = topological_order(ids, pairs)
        self.out: dict[str, list[tuple[str, float]]] = {n: [] for n in ids}
        for e in scenario.edges:
            self.out[e.source].append((e.target, e.ratio))
        self.base = {n.id: n.external_arrival_rate for n in scenario.nodes}
        self.cap = dict.fromkeys(ids, math.inf)

    def external(self, t: float) -> dict[str, float]:
        ext = dict(self.base)
        for node, profiles in self.scenario.load.items():
            ext[node] = max(0.0, ext[node] + sum(p.rate_at(t) for p in profiles))
        return ext

    def demand(self, t: float) -> dict[str, float]:
        return dict(propagate(self.order, self.external(t), self.out, self.cap).demand)


def prior_history(scenario: Scenario, days: int = PRIOR_DAYS) -> DemandRecorder:
    """The demand store after `days` days in service before t = 0: a noisy sample per tick, 5-minute means."""
    truth = Truth(scenario)
    rng = random.Random(scenario.seed * 7919 + days)
    recorder = DemandRecorder(BUCKET_SECONDS)
    start = scenario.start.timestamp()
    t = -days * DAY
    while t < 0:
        recorder.record(
            start + t,
            {n: v * max(0.0, 1.0 + scenario.noise * rng.gauss(0.0, 1.0)) for n, v in truth.demand(t).items()},
        )
        t += TICK
    return recorder


def _slo(scenario: Scenario) -> dict[str, float]:
    return {
        n.id: 1000.0 * response_time_p95(n.replicas, 0.9 * n.replicas * n.capacity_per_replica, n.capacity_per_replica)
        for n in scenario.nodes
    }


def _hpa(
    snap: Snapshot,
    provisioned: dict[str, int],
    history: dict[str, list[tuple[float, int]]],
    now: float,
    target: float = TARGET,
) -> list[ScaleAction]:
    actions = []
    for n in snap.nodes:
        spec = provisioned[n.id]
        if spec < n.min_replicas:
            # As the Kubernetes controller does ("current number of replicas below Spec.MinReplicas"):
            # replicas lost below the minimum are asked back, metric or not.
            actions.append(ScaleAction(node=n.id, replicas=n.min_replicas))
            continue
        if n.max_replicas <= n.min_replicas or n.metrics.utilization is None:
            continue
        ratio = n.metrics.utilization / target
        desired = spec if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(n.replicas * ratio)
        desired = max(n.min_replicas, min(n.max_replicas, desired))
        recs = [(t, r) for t, r in history.get(n.id, []) if now - t < HPA_STABILIZATION] + [(now, desired)]
        history[n.id] = recs
        if desired < spec:
            desired = max(r for _, r in recs)  # scale-down stabilization: highest recent recommendation
        if desired != spec:
            actions.append(ScaleAction(node=n.id, replicas=desired))
    return actions


def _foresight(
    snap: Snapshot, provisioned: dict[str, int], truth: Truth, t: float, slo: dict[str, float]
) -> list[ScaleAction]:
    peaks: dict[str, float] = {}
    s = t
    while s <= t + READINESS + TICK + 1e-9:
        for node, d in truth.demand(s).items():
            peaks[node] = max(peaks.get(node, 0.0), d)
        s += TICK
    actions = []
    for n in snap.nodes:
        if n.max_replicas <= n.min_replicas:
            continue
        want = replicas_for(
            peaks[n.id], AGENT_TARGET, n.capacity_per_replica, n.min_replicas, n.max_replicas, slo[n.id]
        )
        if want != provisioned[n.id]:
            actions.append(ScaleAction(node=n.id, replicas=want))
    return actions


def closed_loop(day: str, mode: str) -> dict[str, Any]:
    """One controller over one day; the figures in the module docstring."""
    scenario = load_scenario(SCENARIOS / f"{day}.yaml")
    sim = Simulator(scenario, seed=scenario.seed, readiness_seconds=READINESS)
    truth = Truth(scenario)
    slo = _slo(scenario)
    desires = Desires(target_utilization=AGENT_TARGET, readiness_seconds=READINESS, latency_slo_ms=slo)
    state = AgentState()
    recorder = prior_history(scenario) if mode == "agent" else None
    entries = [n for n in truth.order if scenario.load.get(n)]
    hpa_history: dict[str, list[tuple[float, int]]] = {}
    violation_minutes = replica_hours = 0.0
    per_node = {n.id: {"replica_hours": 0.0, "violation_minutes": 0.0, "dead_minutes": 0.0} for n in scenario.nodes}
    action_times: dict[str, list[float]] = {}
    actions = misses = 0
    last_down: dict[str, float] = {}
    decide_seconds: list[float] = []
    duration = scenario.duration or DAY
    while sim.elapsed < duration - 1e-9:
        sim.run(TICK, dt=TICK)
        snap = sim.snapshot()
        provisioned = sim.provisioned()
        for n in snap.nodes:
            hours = provisioned[n.id] * TICK / 3600.0
            replica_hours += hours
            per_node[n.id]["replica_hours"] += hours
            if n.replicas == 0 and n.min_replicas > 0:
                per_node[n.id]["dead_minutes"] += TICK / 60.0
            p95 = n.metrics.latency_p95_ms
            if p95 is not None and p95 > slo[n.id]:
                violation_minutes += TICK / 60.0
                per_node[n.id]["violation_minutes"] += TICK / 60.0
        todo: list[ScaleAction] = []
        if mode == "hpa":
            todo = _hpa(snap, provisioned, hpa_history, sim.elapsed)
        elif mode == "hpa_0.9":
            todo = _hpa(snap, provisioned, hpa_history, sim.elapsed, target=AGENT_TARGET)
        elif mode == "foresight":
            todo = _foresight(snap, provisioned, truth, sim.elapsed, slo)
        elif mode.startswith("agent"):
            history = recorder.history(entries) if recorder is not None else None
            started = time.perf_counter()
            decision = decide(state, snap, desires, demand_history=history)
            decide_seconds.append(time.perf_counter() - started)
            state = decision.new_state
            todo = [a for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction)]
            if recorder is not None and not decision.beliefs.stale:
                recorder.record(snap.observed_at, {n: b.demand for n, b in decision.beliefs.nodes.items() if b.trusted})
        for action in todo:
            before = provisioned[action.node]
            if action.replicas == before:
                continue  # asks for replicas already on their way (a snapshot shows ready ones): a no-op
            sim.apply(action)
            actions += 1
            action_times.setdefault(action.node, []).append(sim.elapsed)
            if action.replicas < before:
                last_down[action.node] = sim.elapsed
            elif action.node in last_down and sim.elapsed - last_down[action.node] < desires.cooldown_seconds:
                misses += 1
    out: dict[str, Any] = {
        "slo_violation_node_minutes": round(violation_minutes, 1),
        "replica_hours": round(replica_hours, 1),
        "actions": actions,
        "per_node": {n: {k: round(v, 1) for k, v in d.items()} for n, d in per_node.items()},
    }
    out["max_actions_per_node_in_30_min"] = max(
        (sum(1 for u in ts if t <= u < t + 1800.0) for ts in action_times.values() for t in ts), default=0
    )
    if mode.startswith("agent"):
        out["forecast_misses"] = misses
        out["decide_ms_p50"] = round(1000 * statistics.median(decide_seconds), 2)
        out["decide_ms_p95"] = round(1000 * sorted(decide_seconds)[int(0.95 * (len(decide_seconds) - 1))], 2)
    return out


def _holt_winters(values: list[float], steps: int) -> list[float] | None:
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            values, trend=None, seasonal="add", seasonal_periods=round(DAY / BUCKET_SECONDS)
        ).fit()
    return [float(x) for x in fit.forecast(steps)]


def forecast_accuracy(day: str) -> dict[str, Any]:
    """MAPE of the gateway's demand forecast at the end of the planning window, every 5 minutes of the day."""
    scenario = load_scenario(SCENARIOS / f"{day}.yaml")
    truth = Truth(scenario)
    entry = next(n for n in truth.order if scenario.load.get(n))
    recorder = prior_history(scenario)
    rng = random.Random(scenario.seed)
    start = scenario.start.timestamp()
    desires = Desires(target_utilization=TARGET, readiness_seconds=READINESS)
    lead = READINESS + desires.cooldown_seconds
    ours: list[float] = []
    naive: list[float] = []
    hw: list[float] = []
    ours_seconds: list[float] = []
    hw_seconds: list[float] = []
    hw_plan: tuple[float, list[float]] | None = None
    hw_available = True
    t = 0.0
    while t < (scenario.duration or DAY):
        if t % BUCKET_SECONDS < 1e-9:
            now = datetime.fromtimestamp(start + t, UTC)
            actual = truth.demand(t + lead)[entry]
            current = truth.demand(t)[entry] * (1.0 + scenario.noise * rng.gauss(0.0, 1.0))
            history = recorder.history([entry])
            began = time.perf_counter()
            f = forecast_node(entry, history, now, current=current, horizon_seconds=lead)
            ours_seconds.append(time.perf_counter() - began)
            if f is not None and actual > 0:
                ours.append(abs(f.points[-1].mean - actual) / actual)
            k = math.floor((start + t + lead) / BUCKET_SECONDS)
            same = [v for (b, v) in history.of(entry) if abs(b / BUCKET_SECONDS - (k - DAY / BUCKET_SECONDS)) < 0.5]
            if same and actual > 0:
                naive.append(abs(same[0] - actual) / actual)
            if hw_available and (hw_plan is None or t - hw_plan[0] >= 3600.0):
                values = [v for _, v in history.of(entry)]
                began = time.perf_counter()
                steps = _holt_winters(values, round(3600.0 / BUCKET_SECONDS) + 3)
                hw_seconds.append(time.perf_counter() - began)
                if steps is None:
                    hw_available = False
                else:
                    hw_plan = (t, steps)
            if hw_available and hw_plan is not None and actual > 0:
                # Step i forecasts the bucket starting i buckets after the last one fitted; t + lead falls in it.
                fitted_until = start + hw_plan[0]
                i = math.floor((start + t + lead - fitted_until) / BUCKET_SECONDS)
                if 0 <= i < len(hw_plan[1]):
                    hw.append(abs(hw_plan[1][i] - actual) / actual)
        snap_demand = truth.demand(t)
        recorder.record(
            start + t, {n: v * max(0.0, 1.0 + scenario.noise * rng.gauss(0.0, 1.0)) for n, v in snap_demand.items()}
        )
        t += TICK
    result: dict[str, Any] = {
        "node": entry,
        "lead_seconds": lead,
        "ours_mape_pct": round(100 * statistics.fmean(ours), 2),
        "ours_p95_ape_pct": round(100 * sorted(ours)[int(0.95 * (len(ours) - 1))], 2),
        "ours_ms_per_forecast": round(1000 * statistics.median(ours_seconds), 2),
        "seasonal_naive_mape_pct": round(100 * statistics.fmean(naive), 2) if naive else None,
        "holt_winters_mape_pct": round(100 * statistics.fmean(hw), 2) if hw else None,
        "holt_winters_ms_per_fit": round(1000 * statistics.median(hw_seconds), 1) if hw else None,
    }
    if not hw:
        result["holt_winters_note"] = "statsmodels not installed (make bench installs it)"
    return result


def run() -> dict[str, Any]:
    """Every controller on both days, forecast accuracy, and the goal ratios."""
    out: dict[str, Any] = {}
    for day in DAYS:
        loop = {mode: closed_loop(day, mode) for mode in MODES}
        out[day] = {
            "controllers": loop,
            "ratios": ratios(loop),
            "forecast_accuracy": forecast_accuracy(day),
        }
    return out


def ratios(loop: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Agent vs HPA and vs foresight, and whether the goals are met."""
    agent, hpa, fore = loop["agent"], loop["hpa"], loop["foresight"]

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    v_hpa = ratio(agent["slo_violation_node_minutes"], hpa["slo_violation_node_minutes"])
    rh_hpa = ratio(agent["replica_hours"], hpa["replica_hours"])
    rh_fore = ratio(agent["replica_hours"], fore["replica_hours"])
    node_minutes = len(agent["per_node"]) * DAY / 60.0
    extra = (agent["slo_violation_node_minutes"] - fore["slo_violation_node_minutes"]) / node_minutes
    # Nodes the HPA left without a ready replica (min_replicas > 0) cost it nothing while they serve nothing.
    kept = [n for n, d in hpa["per_node"].items() if d["dead_minutes"] <= DEAD_MINUTES]

    def hours(c: dict[str, Any]) -> float:
        return float(sum(c["per_node"][n]["replica_hours"] for n in kept))

    return {
        "violations_vs_hpa": v_hpa,
        "replica_hours_vs_hpa": rh_hpa,
        "replica_hours_vs_foresight": rh_fore,
        "foresight_replica_hours_vs_hpa": ratio(fore["replica_hours"], hpa["replica_hours"]),
        "hpa_dead_nodes": sorted(set(hpa["per_node"]) - set(kept)),
        "replica_hours_vs_hpa_on_nodes_it_kept_serving": ratio(hours(agent), hours(hpa)),
        "violations_vs_foresight_pct_of_node_minutes": round(100 * extra, 3),
        "goal_met": v_hpa is not None
        and v_hpa <= GOAL_VIOLATIONS
        and rh_hpa is not None
        and rh_hpa <= GOAL_REPLICA_HOURS,
        "aim_met": rh_fore is not None and rh_fore <= AIM_FORESIGHT and extra <= 0.01,
    }


LABELS = {
    "none": "none (initial replicas)",
    "hpa": "HPA rule (target 0.8)",
    "hpa_0.9": "HPA rule at the agent's ceiling (target 0.9)",
    "foresight": "perfect foresight",
    "agent": "twinops agent (forecast)",
    "agent_no_forecast": "twinops agent without history (trend + hysteresis)",
}


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    lines = [
        "### Right-sizing (`benchmarks/bench_rightsizing.py`)",
        "",
        "Closed loop over a day, 30 s tick, replicas ready 120 s after a scale-up, same scenario and seed for every "
        "controller; the agent has the 7 days before in its demand history. Goal: SLO-violation node-minutes "
        f"<= x{GOAL_VIOLATIONS} and replica-hours <= x{GOAL_REPLICA_HOURS} the HPA rule's; aim: replica-hours "
        f"<= x{AIM_FORESIGHT} perfect foresight's with violations <= foresight's + 1% of node-minutes.",
    ]
    for day in DAYS:
        r = result[day]
        loop, rt, acc = r["controllers"], r["ratios"], r["forecast_accuracy"]
        lines += [
            "",
            f"**{day}**: goal {'met' if rt['goal_met'] else 'NOT met'}, aim {'met' if rt['aim_met'] else 'NOT met'}.",
            "",
            "| controller | SLO-violation node-minutes | replica-hours | actions | max actions per node in 30 min |",
            "|---|---|---|---|---|",
        ]
        for mode in MODES:
            c = loop[mode]
            lines.append(
                f"| {LABELS[mode]} | {c['slo_violation_node_minutes']} | {c['replica_hours']} | {c['actions']} "
                f"| {c['max_actions_per_node_in_30_min']} |"
            )
        hw = (
            f"Holt-Winters {acc['holt_winters_mape_pct']}% ({acc['holt_winters_ms_per_fit']:.0f} ms per hourly fit)"
            if acc.get("holt_winters_mape_pct") is not None
            else "Holt-Winters not measured (statsmodels missing)"
        )
        lines += [
            "",
            f"Agent vs HPA: violations x{rt['violations_vs_hpa']}, replica-hours x{rt['replica_hours_vs_hpa']}. "
            f"Agent vs foresight: replica-hours x{rt['replica_hours_vs_foresight']}, violations "
            f"{rt['violations_vs_foresight_pct_of_node_minutes']:+.2f}% of node-minutes. Forecast misses (a "
            f"scale-down undone within the cool-down): {loop['agent']['forecast_misses']}. Gateway demand forecast "
            f"{acc['lead_seconds'] / 60:.0f} min ahead, MAPE: ours {acc['ours_mape_pct']}% "
            f"({acc['ours_ms_per_forecast']} ms), seasonal naive {acc['seasonal_naive_mape_pct']}%, {hw}.",
        ]
        if rt["hpa_dead_nodes"]:
            dead = ", ".join(rt["hpa_dead_nodes"])
            lines.append(
                f"\nThe HPA rule left {dead} without a ready replica "
                f"({sum(loop['hpa']['per_node'][n]['dead_minutes'] for n in rt['hpa_dead_nodes']):.0f} node-minutes): "
                "replicas lost down to zero leave it no metric to act on, and a node serving nothing costs nothing. "
                f"Even perfect foresight spends x{rt['foresight_replica_hours_vs_hpa']} the HPA's replica-hours here; "
                "on the nodes the HPA kept serving the agent spends "
                f"x{rt['replica_hours_vs_hpa_on_nodes_it_kept_serving']}."
            )
    return lines
