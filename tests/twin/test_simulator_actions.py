"""Actions and their undo, idempotency, fork, what-if, determinism, faults and the simulator source."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from tests.twin.test_simulator import START, scenario
from twin.actions import RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot
from twin.history import read_history, write_history
from twin.simulator import (
    RESTART_WARMUP_FACTOR,
    RESTART_WARMUP_SECONDS,
    Simulator,
    SimulatorSource,
    parse_action,
    what_if,
)
from twin.sources import TwinSource


def state(sim: Simulator) -> str:
    """Everything observable about a simulator, as one string."""
    return f"{sim.elapsed}|{sim.snapshot().to_json()}"


def loaded(rate: float = 300.0, **overrides: Any) -> Simulator:
    return Simulator(scenario(load={"web": {"kind": "constant", "rate": rate}}, **overrides))


# ---- undo --------------------------------------------------------------------------------------


def test_scale_undo_restores_replicas() -> None:
    sim = loaded()
    before = sim.snapshot().to_json()
    undo = sim.apply(ScaleAction(node="api", replicas=5))
    assert undo == ScaleAction(node="api", replicas=2)
    assert sim.snapshot().node("api").replicas == 5
    sim.apply(undo)
    assert sim.snapshot().to_json() == before


def test_shift_traffic_undo_restores_ratios() -> None:
    sim = loaded()
    before = sim.snapshot().to_json()
    undo = sim.apply(ShiftTrafficAction(source="web", ratios={"api": 0.25}))
    assert undo == ShiftTrafficAction(source="web", ratios={"api": 0.5})
    after = sim.snapshot()
    assert after.edges[0].ratio == 0.25
    assert after.node("api").metrics.arrival_rate == pytest.approx(75.0)
    sim.apply(undo)
    assert sim.snapshot().to_json() == before


def test_rate_limit_sheds_load_and_undo_removes_it() -> None:
    sim = loaded()
    before = sim.snapshot().to_json()
    undo = sim.apply(RateLimitAction(node="api", max_rps=80.0))
    assert undo == RateLimitAction(node="api", max_rps=None)
    snap = sim.run(5)[-1]
    api = snap.node("api").metrics
    assert api.arrival_rate == pytest.approx(150.0)
    assert api.throughput == pytest.approx(80.0)
    assert api.queue_depth == 0.0  # shed, not queued
    assert api.error_rate == pytest.approx(70.0 / 150.0)
    assert snap.node("db").metrics.arrival_rate == pytest.approx(160.0)
    again = sim.apply(RateLimitAction(node="api", max_rps=90.0))
    assert again == RateLimitAction(node="api", max_rps=80.0)
    sim.apply(again)
    sim.apply(undo)
    after = sim.snapshot()
    assert after.node("api").metrics.error_rate == 0.0
    assert after.node("db").metrics.arrival_rate == pytest.approx(200.0)
    assert before != after.to_json()  # only because time moved on (no queue built while limited)


def test_restart_drops_queue_and_warms_up() -> None:
    sim = loaded()
    sim.run(10)
    assert sim.snapshot().node("api").metrics.queue_depth == pytest.approx(500.0)
    undo = sim.apply(RestartAction(node="api"))
    assert undo == ScaleAction(node="api", replicas=2)  # no-op marker
    snap = sim.snapshot()
    assert snap.node("api").metrics.queue_depth == 0.0
    assert snap.node("api").capacity_per_replica == pytest.approx(50.0 * RESTART_WARMUP_FACTOR)
    warm = sim.run(RESTART_WARMUP_SECONDS - 1)
    assert warm[-1].node("api").metrics.throughput == pytest.approx(100.0 * RESTART_WARMUP_FACTOR)
    after = sim.run(1)[-1]
    assert after.node("api").capacity_per_replica == pytest.approx(50.0)
    before_undo = sim.snapshot().to_json()
    sim.apply(undo)
    assert sim.snapshot().to_json() == before_undo


def test_scale_out_of_bounds_is_rejected_not_clamped() -> None:
    sim = loaded()
    with pytest.raises(ValueError, match=r"'api' to 11: outside bounds \[1, 10\]"):
        sim.apply(ScaleAction(node="api", replicas=11))
    with pytest.raises(ValueError, match=r"'api' to 0"):
        sim.apply(ScaleAction(node="api", replicas=0))
    assert sim.snapshot().node("api").replicas == 2


def test_unknown_nodes_and_edges_are_named() -> None:
    sim = loaded()
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        sim.apply(ScaleAction(node="ghost", replicas=2))
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        sim.apply(RateLimitAction(node="ghost", max_rps=1.0))
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        sim.apply(RestartAction(node="ghost"))
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        sim.apply(ShiftTrafficAction(source="ghost", ratios={"api": 1.0}))
    with pytest.raises(ValueError, match=r"unknown edge.*'web'->'db'"):
        sim.apply(ShiftTrafficAction(source="web", ratios={"db": 1.0}))


def test_parse_action() -> None:
    assert parse_action({"type": "scale", "node": "api", "replicas": 3}) == ScaleAction(node="api", replicas=3)


# ---- idempotency -------------------------------------------------------------------------------


def test_same_idempotency_key_is_a_no_op() -> None:
    sim = loaded()
    first = sim.apply(ScaleAction(node="api", replicas=4), idempotency_key="wf-1/step-0")
    sim.apply(ScaleAction(node="api", replicas=6))
    second = sim.apply(ScaleAction(node="api", replicas=4), idempotency_key="wf-1/step-0")
    assert second == first == ScaleAction(node="api", replicas=2)
    assert sim.snapshot().node("api").replicas == 6


def test_idempotency_key_reused_for_another_action_is_rejected() -> None:
    sim = loaded()
    sim.apply(ScaleAction(node="api", replicas=4), idempotency_key="k")
    with pytest.raises(ValueError, match="idempotency key 'k'"):
        sim.apply(ScaleAction(node="api", replicas=5), idempotency_key="k")


# ---- fork, what-if, determinism ----------------------------------------------------------------


def test_fork_leaves_the_original_untouched() -> None:
    sim = loaded(noise=0.05, seed=9)
    sim.run(5)
    # A copy made without fork() to compare against (observing draws noise, so compare copies).
    reference = copy.deepcopy(sim)
    rng_before = sim._rng.getstate()
    twin = sim.fork()
    twin.apply(ScaleAction(node="api", replicas=6), idempotency_key="x")
    twin.apply(ShiftTrafficAction(source="web", ratios={"api": 0.1}))
    twin.apply(RestartAction(node="db"))
    twin.run(30)
    assert sim._rng.getstate() == rng_before
    assert state(sim) == state(reference)
    assert state(sim) != state(twin)
    assert sim.apply(ScaleAction(node="api", replicas=7), idempotency_key="x") == ScaleAction(node="api", replicas=2)
    # The fork carries the RNG state: two forks continue identically, noise included.
    a, b = sim.fork(), sim.fork()
    assert [s.to_json() for s in a.run(10)] == [s.to_json() for s in b.run(10)]


def test_fork_does_not_consume_the_original_pending_faults() -> None:
    sim = loaded(120.0, faults=[{"kind": "capacity_factor", "node": "api", "at": 10, "factor": 0.5, "duration": 5}])
    sim.run(5)
    twin = sim.fork()
    twin.apply(RateLimitAction(node="api", max_rps=10.0))
    twin.run(20)
    assert twin.snapshot().node("api").capacity_per_replica == 50.0  # the fault came and went
    snaps = {round((s.observed_at - START).total_seconds()): s for s in sim.run(10)}
    assert snaps[9].node("api").capacity_per_replica == 50.0
    assert snaps[10].node("api").capacity_per_replica == 25.0
    assert snaps[10].node("api").metrics.error_rate == 0.0  # the fork's rate limit stayed in the fork


def test_what_if_does_not_touch_base() -> None:
    sim = loaded()
    sim.run(10)
    before = state(sim)
    predicted = what_if(sim, [ScaleAction(node="api", replicas=4)], seconds=30)
    assert len(predicted) == 30
    assert (predicted[0].observed_at - sim.now).total_seconds() == 1.0
    assert predicted[-1].node("api").metrics.queue_depth == 0.0
    assert state(sim) == before


def test_what_if_from_snapshot() -> None:
    snap = loaded().run(10)[-1]
    frozen = snap.to_json()
    predicted = what_if(snap, [ScaleAction(node="api", replicas=4)], seconds=20, dt=2.0)
    assert len(predicted) == 10
    assert (predicted[0].observed_at - snap.observed_at).total_seconds() == 2.0
    # The observed queue of 500 drains at 200 - 150 = 50 per second.
    assert predicted[0].node("api").metrics.queue_depth == pytest.approx(400.0)
    assert predicted[-1].node("api").metrics.queue_depth == 0.0
    assert snap.to_json() == frozen


def test_same_scenario_and_seed_give_byte_identical_history(tmp_path: Path) -> None:
    def history(path: Path, seed: int) -> bytes:
        sim = Simulator(scenario(noise=0.1, seed=seed), seed=None)
        sim.run(30)
        sim.apply(ScaleAction(node="api", replicas=3))
        write_history(path, sim.run(120, dt=0.5, record_every=5))
        return path.read_bytes()

    first = history(tmp_path / "a.jsonl", 4)
    assert first == history(tmp_path / "b.jsonl", 4)
    assert first != history(tmp_path / "c.jsonl", 5)
    assert len(read_history(tmp_path / "a.jsonl")) == 24


def test_seed_argument_overrides_scenario_seed() -> None:
    sc = scenario(noise=0.1, seed=1)
    a = Simulator(sc, seed=2).run(5)
    b = Simulator(scenario(noise=0.1, seed=2)).run(5)
    assert [s.to_json() for s in a] == [s.to_json() for s in b]


def test_run_records_every_n_seconds() -> None:
    sim = loaded()
    snaps = sim.run(60, dt=0.5, record_every=15)
    assert [(s.observed_at - START).total_seconds() for s in snaps] == [15.0, 30.0, 45.0, 60.0]
    with pytest.raises(ValueError, match="whole number"):
        sim.run(10, dt=3.0)
    with pytest.raises(ValueError, match="dt"):
        sim.step(0.0)


# ---- faults ------------------------------------------------------------------------------------


def test_faults_fire_at_their_time() -> None:
    sim = loaded(
        120.0,
        faults=[
            {"kind": "replicas_lost", "node": "web", "at": 10, "replicas": 3},
            {"kind": "capacity_factor", "node": "api", "at": 20, "factor": 0.5, "duration": 10},
            {"kind": "bad_release", "node": "db", "at": 5, "error_rate": 0.2, "extra_latency_ms": 300},
        ],
    )
    by_second = {int((s.observed_at - START).total_seconds()): s for s in sim.run(40)}
    assert by_second[9].node("web").replicas == 4
    assert by_second[10].node("web").replicas == 1
    # web now serves 100 of 120: its queue grows 20/s, api sees 50 rps.
    assert by_second[15].node("web").metrics.queue_depth == pytest.approx(20.0 * 6)
    assert by_second[19].node("api").capacity_per_replica == 50.0
    assert by_second[20].node("api").capacity_per_replica == 25.0
    assert by_second[30].node("api").capacity_per_replica == 50.0
    assert by_second[4].node("db").metrics.error_rate == 0.0
    db = by_second[5].node("db").metrics
    assert db.error_rate == pytest.approx(0.2)
    clean = loaded(120.0).run(5)[-1].node("db").metrics
    assert db.latency_p95_ms is not None and clean.latency_p95_ms is not None
    assert db.latency_p95_ms == pytest.approx(clean.latency_p95_ms + 300.0)


def test_scaling_does_not_fix_a_bad_release() -> None:
    sim = loaded(120.0, faults=[{"kind": "bad_release", "node": "api", "at": 0, "error_rate": 0.3}])
    sim.apply(ScaleAction(node="api", replicas=10))
    assert sim.run(10)[-1].node("api").metrics.error_rate == pytest.approx(0.3)


# ---- the simulator as a TwinSource -------------------------------------------------------------


def test_simulator_source_advances_a_tick_per_call() -> None:
    source = SimulatorSource(loaded(), tick_seconds=15.0)
    assert isinstance(source, TwinSource)

    async def two() -> list[Snapshot]:
        return [await source.latest(), await source.latest()]

    first, second = asyncio.run(two())
    assert (first.observed_at - START).total_seconds() == 15.0
    assert (second.observed_at - START).total_seconds() == 30.0
    assert second.node("api").metrics.queue_depth == pytest.approx(50.0 * 30)
    source.simulator.apply(ScaleAction(node="api", replicas=4))
    assert source.simulator.snapshot().node("api").replicas == 4
