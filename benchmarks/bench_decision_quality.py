"""Decision quality of the BDI agent (agents/), against known answers and against the HPA rule.

1. Generated scenarios: 24 layered DAGs of 3..200 nodes from fixed seeds. Replicas are sized so
   ~15% of nodes are at risk and ~15% saturated (many of them hidden behind a saturated
   upstream); 4 scenarios cap a saturated node's max_replicas so the goal is infeasible. The
   known answer is the reference semantics (twin.graph). Reported: detection precision and
   recall for saturated / at_risk (and, for contrast, a detector that reads observed
   utilization), whether the constraint is named, plan cost / optimal scale-only cost
   (added replica-hours), and the share of plans leaving every node at or under target.
   The simulator scenarios (single_saturated, hidden_downstream, bad_release) are checked too.
2. Ramp lead time: slow_ramp observed every 60 s; seconds between the first proposal for the
   api and the moment its demand utilization crosses the target.
3. Closed loop: moved to bench_rightsizing.py (HPA rule, perfect foresight and the agent with
   forecasts, on two days, with a readiness delay).
4. Planning latency: one `decide` tick on 10-, 100- and 1,000-node graphs (p50 / p95).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

from agents import AgentState, Desires, FindingKind, decide, detect, revise, steady_state
from twin.actions import ScaleAction
from twin.contract import Snapshot, parse_snapshot
from twin.graph import optimal_replicas, snapshot_flow
from twin.scenario import load_scenario
from twin.simulator import Simulator

NAME = "decision_quality"
SCENARIOS = Path(__file__).resolve().parent.parent / "twin" / "scenarios"
TARGET = 0.8
SIZES = (3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 90, 100, 120, 140, 160, 180, 200, 150, 200)
INFEASIBLE = {5, 11, 17, 23}
TICK = 30.0
LATENCY_SIZES = (10, 100, 1000)
LATENCY_REPEATS = {10: 100, 100: 40, 1000: 12}


def generate(n: int, seed: int, infeasible: bool = False) -> Snapshot:
    """A layered DAG with observed metrics by the throttled reference flow (see the module docstring)."""
    rng = random.Random(seed)
    layers = max(2, min(n, round(math.sqrt(n))))
    layer = [min(layers - 1, i * layers // n) for i in range(n)]
    ids = [f"n{i:03d}" for i in range(n)]
    edges: list[dict[str, Any]] = []
    for i in range(n):
        if layer[i] == 0:
            continue
        earlier = [j for j in range(n) if layer[j] < layer[i]]
        for j in rng.sample(earlier, k=min(len(earlier), rng.randint(1, 2))):
            edges.append({"source": ids[j], "target": ids[i], "ratio": round(rng.uniform(0.2, 1.2), 3)})
    mu = [round(rng.uniform(50.0, 400.0), 1) for _ in range(n)]
    ext = [round(rng.uniform(200.0, 2000.0), 1) if layer[i] == 0 else 0.0 for i in range(n)]
    nodes: list[dict[str, Any]] = [
        {
            "id": ids[i],
            "replicas": 1,
            "capacity_per_replica": mu[i],
            "min_replicas": 1,
            "max_replicas": 10_000,
            "external_arrival_rate": ext[i],
        }
        for i in range(n)
    ]
    base = parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": f"gen{seed}",
            "observed_at": "2026-11-21T12:00:00Z",
            "nodes": nodes,
            "edges": edges,
        }
    )
    demand = snapshot_flow(base).demand
    capped = None
    for i, node in enumerate(nodes):
        roll = rng.random()
        u = rng.uniform(0.3, 0.72) if roll < 0.7 else rng.uniform(0.82, 0.97) if roll < 0.85 else rng.uniform(1.05, 1.6)
        node["replicas"] = max(1, math.floor(demand[ids[i]] / (u * mu[i])))
        node["max_replicas"] = max(node["replicas"], math.ceil(demand[ids[i]] / (TARGET * mu[i])) + 20)
        if infeasible and capped is None and u > 1 and layer[i] > 0:
            node["max_replicas"] = node["replicas"]
            capped = i
    snap = parse_snapshot({**base.model_dump(mode="json", by_alias=True), "nodes": nodes})
    flow = snapshot_flow(snap)
    for node in nodes:
        c = flow.capacity[node["id"]]
        t = flow.throughput[node["id"]]
        node["metrics"] = {
            "arrival_rate": flow.arrivals[node["id"]],
            "throughput": t,
            "utilization": t / c if c else 0.0,
        }
    return parse_snapshot({**snap.model_dump(mode="json", by_alias=True), "nodes": nodes})


def _prf(found: set[str], truth: set[str]) -> tuple[float, float]:
    precision = len(found & truth) / len(found) if found else 1.0
    recall = len(found & truth) / len(truth) if truth else 1.0
    return precision, recall


def _generated() -> dict[str, Any]:
    desires = Desires(target_utilization=TARGET)
    rows: list[dict[str, Any]] = []
    for k, n in enumerate(SIZES):
        snap = generate(n, seed=1000 + k, infeasible=k in INFEASIBLE)
        flow = snapshot_flow(snap)
        rho = {x.id: flow.utilization(x.id) for x in snap.nodes}
        truth_sat = {x for x, r in rho.items() if r >= 1}
        truth_risk = {x for x, r in rho.items() if TARGET <= r < 1}
        hidden = {x for x in truth_sat | truth_risk if flow.arrivals[x] < flow.demand[x] - 1e-9}
        decision = decide(AgentState(), snap, desires)
        det = decision.detection
        sat = {f.node for f in det.of_kind(FindingKind.SATURATED) if f.node}
        risk = {f.node for f in det.of_kind(FindingKind.AT_RISK) if f.node}
        naive = {x.id for x in snap.nodes if (x.metrics.utilization or 0) >= TARGET}
        fixes = [p for p in decision.proposals if p.intent == "remediate"]
        actions = [a for p in fixes for a in p.actions]
        after = steady_state(snap, actions)
        best = optimal_replicas(snap, TARGET)
        optimal_added = sum(max(0, best[x.id] - x.replicas) for x in snap.nodes)
        added = sum(a.replicas - snap.node(a.node).replicas for a in actions if isinstance(a, ScaleAction))
        over_opt = max((a.replicas - best[a.node] for a in actions if isinstance(a, ScaleAction)), default=0)
        rows.append(
            {
                "nodes": n,
                "feasible": k not in INFEASIBLE,
                "saturated": len(truth_sat),
                "at_risk": len(truth_risk),
                "hidden": len(hidden),
                "saturated_pr": _prf(sat, truth_sat),
                "at_risk_pr": _prf(risk, truth_risk),
                "naive_recall": _prf(naive, truth_sat | truth_risk)[1],
                "constraint_named": det.constraint == max(rho, key=lambda x: rho[x]),
                "proposals": len(fixes),
                "cost_ratio": added / optimal_added if optimal_added else 1.0,
                "max_over_optimum": over_opt,
                "all_at_or_under_target": all(after.utilization(x.id) <= TARGET + 1e-9 for x in snap.nodes),
                "unmet": sum(len(p.unmet) for p in fixes),
                "shed_or_shift": any(a.type in ("rate_limit", "shift_traffic") for a in actions),
            }
        )
    feasible = [r for r in rows if r["feasible"]]
    infeasible = [r for r in rows if not r["feasible"]]

    def mean(key: str, idx: int, rs: list[dict[str, Any]]) -> float:
        return round(statistics.fmean(r[key][idx] for r in rs), 4)

    shed_listed = sum(r["shed_or_shift"] and r["unmet"] > 0 for r in infeasible)
    return {
        "scenarios": len(rows),
        "node_range": [min(SIZES), max(SIZES)],
        "nodes_total": sum(SIZES),
        "saturated_precision": mean("saturated_pr", 0, rows),
        "saturated_recall": mean("saturated_pr", 1, rows),
        "at_risk_precision": mean("at_risk_pr", 0, rows),
        "at_risk_recall": mean("at_risk_pr", 1, rows),
        "observed_utilization_detector_recall": round(statistics.fmean(r["naive_recall"] for r in rows), 4),
        "hidden_problem_nodes": sum(r["hidden"] for r in rows),
        "constraint_named": f"{sum(r['constraint_named'] for r in rows)}/{len(rows)}",
        "feasible_cost_ratio_mean": round(statistics.fmean(r["cost_ratio"] for r in feasible), 4),
        "feasible_cost_ratio_max": round(max(r["cost_ratio"] for r in feasible), 4),
        "feasible_max_replicas_over_optimum": max(r["max_over_optimum"] for r in feasible),
        "feasible_share_at_or_under_target": round(statistics.fmean(r["all_at_or_under_target"] for r in feasible), 4),
        "infeasible_share_at_or_under_target": round(
            statistics.fmean(r["all_at_or_under_target"] for r in infeasible), 4
        ),
        "infeasible_with_shed_or_shift_and_unmet_listed": f"{shed_listed}/{len(infeasible)}",
        "rows": rows,
    }


def _simulator_scenarios() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("single_saturated", "hidden_downstream", "bad_release"):
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        sim = Simulator(scenario, seed=scenario.seed)
        snaps = sim.run(min(600.0, (scenario.duration or 600.0)), dt=5, record_every=60)
        snap = snaps[-1]
        decision = decide(AgentState(), snap, Desires(), history=snaps[:-1])
        flow = snapshot_flow(snap)
        best = optimal_replicas(snap)
        want = {x.id: best[x.id] for x in snap.nodes if best[x.id] > x.replicas}
        fixes = [p for p in decision.proposals if p.intent == "remediate"]
        got = {a.node: a.replicas for p in fixes for a in p.actions if isinstance(a, ScaleAction)}
        out[name] = {
            "constraint": decision.detection.constraint,
            "constraint_named": decision.detection.constraint == max(flow.demand, key=lambda x: flow.utilization(x)),
            "findings": sorted({f"{f.kind.value}:{f.node}" for f in decision.detection.findings}),
            "actions": [a.model_dump(mode="json") for p in fixes for a in p.actions],
            "optimal_scale_only": want,
            "plan_is_optimal": got == want,
            "proposals": len(fixes),
        }
    return out


def _ramp() -> dict[str, Any]:
    scenario = load_scenario(SCENARIOS / "slow_ramp.yaml")
    sim = Simulator(scenario, seed=scenario.seed)
    state, desires = AgentState(), Desires()
    proposed_at = crossed_at = None
    while sim.elapsed < (scenario.duration or 3600.0):
        sim.run(60, dt=15)
        snap = sim.snapshot()
        decision = decide(state, snap, desires)
        state = decision.new_state
        if proposed_at is None and any(p.target == "api" and p.intent == "remediate" for p in decision.proposals):
            proposed_at = sim.elapsed
        if crossed_at is None and snapshot_flow(snap).utilization("api") >= TARGET:
            crossed_at = sim.elapsed
    return {
        "proposal_at_s": proposed_at,
        "target_crossed_at_s": crossed_at,
        "lead_time_s": None if proposed_at is None or crossed_at is None else crossed_at - proposed_at,
    }


def _latency() -> dict[str, Any]:
    out: dict[str, Any] = {}
    desires = Desires(target_utilization=TARGET)
    for n in LATENCY_SIZES:
        snap = generate(n, seed=7000 + n)
        times = []
        for _ in range(LATENCY_REPEATS[n]):
            started = time.perf_counter()
            decide(AgentState(), snap, desires)
            times.append(time.perf_counter() - started)
        times.sort()
        out[str(n)] = {
            "p50_ms": round(1000 * statistics.median(times), 2),
            "p95_ms": round(1000 * times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 2),
            "repeats": len(times),
            "problem_nodes": len(detect(revise(None, snap), desires).capacity_nodes()),
        }
    return out


def run() -> dict[str, Any]:
    """Measure everything in the module docstring."""
    return {
        "generated": _generated(),
        "simulator_scenarios": _simulator_scenarios(),
        "ramp": _ramp(),
        "planning_latency": _latency(),
    }


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    g, ramp, lat = result["generated"], result["ramp"], result["planning_latency"]
    lines = [
        "### Decision quality (`benchmarks/bench_decision_quality.py`)",
        "",
        f"{g['scenarios']} generated scenarios ({g['node_range'][0]}-{g['node_range'][1]} nodes, "
        f"{g['hidden_problem_nodes']} problem nodes hidden behind an upstream constraint):",
        "",
        "| figure | value |",
        "|---|---|",
        f"| saturated precision / recall | {g['saturated_precision']:.2f} / {g['saturated_recall']:.2f} |",
        f"| at-risk precision / recall | {g['at_risk_precision']:.2f} / {g['at_risk_recall']:.2f} |",
        f"| recall of a detector reading observed utilization | {g['observed_utilization_detector_recall']:.2f} |",
        f"| constraint named | {g['constraint_named']} |",
        f"| plan cost / optimal scale-only cost (feasible; mean, max) | {g['feasible_cost_ratio_mean']:.2f}, "
        f"{g['feasible_cost_ratio_max']:.2f} |",
        f"| plans leaving every node at or under target (feasible) | {g['feasible_share_at_or_under_target']:.0%} |",
        f"| infeasible: shed/shift with unmet goals listed | {g['infeasible_with_shed_or_shift_and_unmet_listed']} |",
        f"| slow ramp: proposal lead time before the target is crossed | {ramp['lead_time_s']} s |",
    ]
    lines += [
        "",
        "| planning latency (one tick) | p50 | p95 |",
        "|---|---|---|",
        *(f"| {n} nodes | {v['p50_ms']} ms | {v['p95_ms']} ms |" for n, v in lat.items()),
    ]
    return lines
