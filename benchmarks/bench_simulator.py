"""Simulator speed: simulated node-seconds per wall second on generated 100- and 1,000-node DAGs.

The graphs are layered DAGs from a fixed seed: 5% of nodes take external load (constant +
diurnal), each node sends to 1-3 nodes in later layers with ratios summing to at most 1, and
replicas are sized for ~70% demand utilization except every tenth node, sized to saturate, so
both the queueing and the free-flow branches of the step run. Steps are dt = 1 s.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime
from typing import Any

from twin.actions import ScaleAction
from twin.graph import propagate, topological_order
from twin.scenario import Scenario, parse_scenario
from twin.simulator import Simulator, what_if

NAME = "simulator"
SIZES = (100, 1000)
STEP_BUDGET_SECONDS = 6.0
SNAPSHOT_REPEATS = 5


def generate(n: int, seed: int = 42) -> Scenario:
    """A layered DAG of `n` nodes with external load on 5% of them (see the module docstring)."""
    rng = random.Random(seed)
    layers = max(2, round(math.sqrt(n) / 2))
    ids = [f"svc-{i:04d}" for i in range(n)]
    layer_of = [min(layers - 1, i * layers // n) for i in range(n)]
    first_of_layer = [layer_of.index(k) for k in range(layers)]
    entries = [i for i in range(n) if layer_of[i] == 0][: max(1, n // 20)]
    edges: list[tuple[int, int, float]] = []
    for i in range(n):
        if layer_of[i] == layers - 1:
            continue
        lo = first_of_layer[layer_of[i] + 1]
        targets = rng.sample(range(lo, n), k=min(n - lo, rng.randint(1, 3)))
        shares = [rng.uniform(0.2, 1.0) for _ in targets]
        total = sum(shares) / rng.uniform(0.6, 1.0)
        edges.extend((i, t, round(s / total, 4)) for t, s in zip(targets, shares, strict=True))
    ext = {ids[i]: rng.uniform(100.0, 400.0) for i in entries}
    out: dict[str, list[tuple[str, float]]] = {x: [] for x in ids}
    for s, t, r in edges:
        out[ids[s]].append((ids[t], r))
    order = topological_order(ids, [(ids[s], ids[t]) for s, t, _ in edges])
    peak = {k: v * 1.5 for k, v in ext.items()}  # constant + diurnal amplitude at its peak
    demand = propagate(order, peak, out, dict.fromkeys(ids, math.inf)).demand
    nodes = []
    for i, name in enumerate(ids):
        mu = rng.choice([50.0, 100.0, 200.0])
        target = 1.2 if i % 10 == 9 else 0.7
        replicas = max(1, math.ceil(demand[name] / (target * mu)))
        nodes.append(
            {"id": name, "replicas": replicas, "capacity_per_replica": mu, "min_replicas": 1,
             "max_replicas": replicas * 4}
        )  # fmt: skip
    load = {
        name: [
            {"kind": "constant", "rate": rate},
            {"kind": "diurnal", "base": 0.0, "amplitude": rate / 2, "period": 86400, "phase": 0},
        ]
        for name, rate in ext.items()
    }
    return parse_scenario(
        {
            "twin_id": f"bench-{n}",
            "start": datetime(2026, 11, 21, tzinfo=UTC).isoformat(),
            "nodes": nodes,
            "edges": [{"source": ids[s], "target": ids[t], "ratio": r} for s, t, r in edges],
            "load": load,
        }
    )


def _measure(n: int) -> dict[str, Any]:
    scenario = generate(n)
    sim = Simulator(scenario)
    sim.run(10)  # warm up
    steps = 0
    started = time.perf_counter()
    while time.perf_counter() - started < STEP_BUDGET_SECONDS:
        for _ in range(50):
            sim.step(1.0)
        steps += 50
    wall = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(SNAPSHOT_REPEATS):
        sim.snapshot()
    snapshot_ms = (time.perf_counter() - started) / SNAPSHOT_REPEATS * 1000
    first = scenario.nodes[0]
    actions = [ScaleAction(node=first.id, replicas=first.replicas + 1)]
    started = time.perf_counter()
    final_only = what_if(sim, actions, seconds=300, record_every=300)
    what_if_final_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    every_second = what_if(sim, actions, seconds=60)
    what_if_each_ms = (time.perf_counter() - started) * 1000
    assert len(final_only) == 1 and len(every_second) == 60
    return {
        "nodes": n,
        "edges": len(scenario.edges),
        "steps": steps,
        "wall_seconds": round(wall, 3),
        "steps_per_second": round(steps / wall, 1),
        "node_seconds_per_wall_second": round(steps * n / wall),
        "snapshot_ms": round(snapshot_ms, 2),
        "what_if_300s_final_only_ms": round(what_if_final_ms, 1),
        "what_if_60s_every_second_ms": round(what_if_each_ms, 1),
    }


def run() -> dict[str, Any]:
    """Measure each graph size."""
    return {"sizes": [_measure(n) for n in SIZES], "dt_seconds": 1.0}


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    lines = [
        "**Simulator** (dt = 1 s, generated layered DAG; `python -m benchmarks simulator`)",
        "",
        "| nodes | edges | steps/s | simulated node-seconds / wall second | snapshot() "
        "| what-if 300 s, final snapshot | what-if 60 s, snapshot every second |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        lines.append(
            f"| {row['nodes']:,} | {row['edges']:,} | {row['steps_per_second']:,.0f} | "
            f"{row['node_seconds_per_wall_second']:,} | {row['snapshot_ms']:.1f} ms | "
            f"{row['what_if_300s_final_only_ms']:,.0f} ms | {row['what_if_60s_every_second_ms']:,.0f} ms |"
        )
    return lines
