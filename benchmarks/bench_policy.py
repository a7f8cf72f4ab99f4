"""Latency of `data.twinops.safety.decision` in-process (regorus) at 1, 10 and 1,000 nodes per proposal.

Two figures per size:
- engine: `set_input_json` + `eval_rule_as_json` on a pre-serialized input, on the
  engine's own thread: what regorus itself costs (wall clock, and CPU time of the
  thread, which leaves out preemption by other work on a shared machine).
- gate: `await RegorusPolicyGate.evaluate_safety(SafetyInput)` end to end: input
  serialization, the hop to the engine thread, decoding and validating the decision.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from controller.policy import RegorusPolicyGate, load_bundle
from controller.policy.engine import build_engine
from controller.settings import REPO_ROOT
from workflows.policy import SAFETY_QUERY, SafetyInput

NAME = "policy"
SIZES = (1, 10, 1000)
SECONDS_PER_RUN = 4.0
MAX_SAMPLES = 5000
MIN_SAMPLES = 30
TARGET_P99_MS = 1.0


def _input(nodes: int) -> SafetyInput:
    """A proposal scaling every one of `nodes` services by one step, with a short history."""
    return SafetyInput.model_validate(
        {
            "proposal": {
                "id": f"bench-{nodes}",
                "plan_hash": "bench",
                "blast_radius": 0.1,
                "predicted": {},
                "actions": [{"type": "scale", "node": f"svc-{i}", "replicas": 6} for i in range(nodes)],
                "nodes": [
                    {"id": f"svc-{i}", "kind": "service", "tier": "standard", "team": "payments",
                     "replicas": 4, "min_replicas": 1, "max_replicas": 40}
                    for i in range(nodes)
                ],
            },
            "snapshot_age_seconds": 3.0,
            "history": [
                {"at": "2026-11-21T21:50:00Z", "node": "svc-0", "action_type": "scale", "plan_hash": "old",
                 "outcome": "verified"}
            ],
            "now": "2026-11-21T22:00:00Z",
            "requester": {"kind": "agent", "id": "bench"},
        }
    )  # fmt: skip


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "samples": len(ordered),
        "decisions_per_second": round(len(ordered) / sum(ordered), 1),
        "p50_ms": round(pct(0.50), 4),
        "p99_ms": round(pct(0.99), 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
    }


def _time(call: Callable[[], object]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU-time samples; on a shared machine the gap between them is preemption."""
    for _ in range(5):
        call()
    wall: list[float] = []
    cpu: list[float] = []
    deadline = time.perf_counter() + SECONDS_PER_RUN
    while len(wall) < MAX_SAMPLES and (time.perf_counter() < deadline or len(wall) < MIN_SAMPLES):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call()
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


async def _time_async(call: Callable[[], Any]) -> list[float]:
    for _ in range(5):
        await call()
    samples: list[float] = []
    deadline = time.perf_counter() + SECONDS_PER_RUN
    while len(samples) < MAX_SAMPLES and (time.perf_counter() < deadline or len(samples) < MIN_SAMPLES):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def run() -> dict[str, Any]:
    """Measure engine-only and end-to-end gate latency at each size."""
    bundle = load_bundle(REPO_ROOT / "policies")
    engine = build_engine(bundle)
    gate = RegorusPolicyGate(bundle, timeout_seconds=30.0)
    sizes: dict[str, Any] = {}
    for nodes in SIZES:
        model = _input(nodes)
        input_json = model.model_dump_json()

        def engine_call(payload: str = input_json) -> object:
            engine.set_input_json(payload)
            return engine.eval_rule_as_json(SAFETY_QUERY)

        decision = json.loads(str(engine_call()))

        async def gate_call(m: SafetyInput = model) -> object:
            return await gate.evaluate_safety(m)

        gate_decision = asyncio.run(gate.evaluate_safety(model))
        assert gate_decision.engine == "regorus" and gate_decision.allow == decision["allow"]
        wall, cpu = _time(engine_call)
        cpu_stats = _stats(cpu)
        sizes[str(nodes)] = {
            "engine": _stats(wall),
            "engine_cpu": {"p50_ms": cpu_stats["p50_ms"], "p99_ms": cpu_stats["p99_ms"]},
            "gate": _stats(asyncio.run(_time_async(gate_call))),
            "input_bytes": len(input_json),
            "decision": {"allow": decision["allow"], "deny": sorted(r["code"] for r in decision["deny"])},
        }
    gate.close()
    return {
        # Two shared cores: other work on the machine shows up in p99, so say how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "query": SAFETY_QUERY,
        "engine": "regorus",
        "bundle_revision": bundle.revision,
        "target_p99_ms": TARGET_P99_MS,
        "sizes": sizes,
    }


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown table for README."""
    lines = [
        f"**Policy gate** (`{result['query']}`, regorus in-process, target p99 < {result['target_p99_ms']} ms; "
        f"load average {result.get('load_average_1m', '?')} while measured)",
        "",
        "| nodes in proposal | engine p50 / p99 ms | engine CPU p50 / p99 ms | engine decisions/s "
        "| gate p50 / p99 ms | gate decisions/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for nodes, row in result["sizes"].items():
        e, c, g = row["engine"], row.get("engine_cpu", {"p50_ms": float("nan"), "p99_ms": float("nan")}), row["gate"]
        lines.append(
            f"| {int(nodes):,} | {e['p50_ms']:.3f} / {e['p99_ms']:.3f} | {c['p50_ms']:.3f} / {c['p99_ms']:.3f} "
            f"| {e['decisions_per_second']:,.0f} "
            f"| {g['p50_ms']:.3f} / {g['p99_ms']:.3f} | {g['decisions_per_second']:,.0f} |"
        )
    return lines
