"""`twinops detect --json` wall time on generated 1,000-, 10,000- and 50,000-node twins (linear in nodes).

The graphs are layered DAGs from a fixed seed: about sqrt(n) layers, the first taking external
load, every other node fed by two nodes of the layer before. Replicas are sized so ~70% of nodes
run at 30-72% of capacity, ~15% at risk and ~15% saturated; observed metrics follow the throttled
reference flow, so findings are capacity findings, not missing-data ones. The command runs in
process (Typer's runner): read and validate the file, revise beliefs, detect, print the JSON.
Before the node lookup per finding became an index, 10,000 nodes took 4.7 s and 50,000 took 80 s.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from controller.cli import app
from twin.contract import parse_snapshot
from twin.graph import snapshot_flow

NAME = "detection"
SIZES = (1_000, 10_000, 50_000)
REPEATS = {1_000: 5, 10_000: 3, 50_000: 1}


def generate(n: int, seed: int = 7) -> dict[str, Any]:
    """A layered twin.v1 document of `n` nodes with metrics from the reference flow (see the module docstring)."""
    rng = random.Random(seed)
    layers = max(2, round(math.sqrt(n)))
    per = math.ceil(n / layers)
    ids = [f"n{i:05d}" for i in range(n)]
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for i, name in enumerate(ids):
        layer = i // per
        nodes.append(
            {
                "id": name,
                "replicas": 1,
                "capacity_per_replica": round(rng.uniform(50.0, 400.0), 1),
                "min_replicas": 1,
                "max_replicas": 100_000,
                "external_arrival_rate": round(rng.uniform(200.0, 2000.0), 1) if layer == 0 else 0.0,
            }
        )
        if layer > 0:
            lo, hi = (layer - 1) * per, min(n, layer * per)
            for j in rng.sample(range(lo, hi), k=min(2, hi - lo)):
                edges.append({"source": ids[j], "target": name, "ratio": round(rng.uniform(0.3, 0.7), 3)})
    doc = {
        "schema": "twin.v1",
        "twin_id": f"bench{n}",
        "observed_at": "2026-11-21T12:00:00Z",
        "nodes": nodes,
        "edges": edges,
    }
    demand = snapshot_flow(parse_snapshot(doc)).demand
    for node in nodes:
        roll = rng.random()
        u = rng.uniform(0.3, 0.72) if roll < 0.7 else rng.uniform(0.82, 0.97) if roll < 0.85 else rng.uniform(1.05, 1.6)
        node["replicas"] = max(1, math.floor(demand[node["id"]] / (u * node["capacity_per_replica"])))
    flow = snapshot_flow(parse_snapshot(doc))
    for node in nodes:
        c, t = flow.capacity[node["id"]], flow.throughput[node["id"]]
        node["metrics"] = {"arrival_rate": flow.arrivals[node["id"]], "throughput": t, "utilization": t / c}
    return doc


def _measure(n: int, folder: Path) -> dict[str, Any]:
    path = folder / f"twin{n}.json"
    path.write_text(json.dumps(generate(n)))
    runner = CliRunner()
    times: list[float] = []
    out = ""
    for _ in range(REPEATS.get(n, 1)):
        started = time.perf_counter()
        result = runner.invoke(app, ["detect", "--snapshot", str(path), "--json"])
        times.append(time.perf_counter() - started)
        if result.exit_code != 0:
            raise RuntimeError(f"detect failed on {n} nodes: {result.output[-500:]}")
        out = result.stdout
    doc = json.loads(out)
    wall = statistics.median(times)
    return {
        "nodes": n,
        "edges": sum(1 for _ in json.loads(path.read_text())["edges"]),
        "findings": len(doc["findings"]),
        "output_bytes": len(out.encode()),
        "repeats": len(times),
        "wall_seconds": round(wall, 3),
        "ms_per_1000_nodes": round(wall * 1e6 / n, 1),
    }


def run() -> dict[str, Any]:
    """Measure every size."""
    with tempfile.TemporaryDirectory() as tmp:
        return {"sizes": [_measure(n, Path(tmp)) for n in SIZES]}


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    lines = [
        "**Detection** (`twinops detect --json`, generated layered twin; `python -m benchmarks detection`)",
        "",
        "| nodes | edges | findings | wall time | per 1,000 nodes |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        lines.append(
            f"| {row['nodes']:,} | {row['edges']:,} | {row['findings']:,} | {row['wall_seconds']:.2f} s "
            f"| {row['ms_per_1000_nodes']:.0f} ms |"
        )
    return lines
