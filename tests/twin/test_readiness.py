"""Readiness delay in the simulator: replicas added by a scale-up serve only after `readiness_seconds`."""

from __future__ import annotations

import pytest

from twin.actions import ScaleAction
from twin.scenario import parse_scenario
from twin.simulator import Simulator

SCENARIO = {
    "twin_id": "r",
    "start": "2026-11-21T00:00:00Z",
    "nodes": [{"id": "api", "replicas": 2, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 10}],
    "load": {"api": {"kind": "constant", "rate": 150.0}},
}


def _sim(readiness: float | None = None, **extra: object) -> Simulator:
    return Simulator(parse_scenario({**SCENARIO, **extra}), readiness_seconds=readiness)


def _replicas(sim: Simulator) -> int:
    return sim.snapshot().node("api").replicas


def test_a_scale_up_serves_only_after_the_readiness_delay() -> None:
    sim = _sim(120)
    undo = sim.apply(ScaleAction(node="api", replicas=5))
    assert undo == ScaleAction(node="api", replicas=2)
    assert _replicas(sim) == 2 and sim.provisioned()["api"] == 5
    sim.run(119, dt=1)
    assert _replicas(sim) == 2
    assert sim.snapshot().node("api").metrics.utilization == pytest.approx(0.75)
    sim.run(1, dt=1)
    assert _replicas(sim) == 5 and sim.provisioned()["api"] == 5
    assert sim.snapshot().node("api").metrics.utilization == pytest.approx(0.3)


def test_the_scenario_sets_the_delay_and_the_constructor_overrides_it() -> None:
    assert _sim(None, readiness_seconds=60).readiness_seconds == 60
    assert _sim(0, readiness_seconds=60).readiness_seconds == 0
    assert _sim().readiness_seconds == 0
    with pytest.raises(ValueError, match="readiness_seconds"):
        _sim(-1)


def test_without_a_delay_a_scale_up_serves_at_once() -> None:
    sim = _sim()
    sim.apply(ScaleAction(node="api", replicas=4))
    assert _replicas(sim) == 4 and sim.provisioned()["api"] == 4


def test_a_scale_down_cancels_pending_replicas_first_newest_first() -> None:
    sim = _sim(120)
    sim.apply(ScaleAction(node="api", replicas=4))  # +2 ready at 120
    sim.run(60, dt=30)
    sim.apply(ScaleAction(node="api", replicas=7))  # +3 ready at 180
    sim.apply(ScaleAction(node="api", replicas=5))  # cancels 2 of the newest 3
    assert sim.provisioned()["api"] == 5 and _replicas(sim) == 2
    sim.run(60, dt=30)
    assert _replicas(sim) == 4
    sim.run(60, dt=30)
    assert _replicas(sim) == 5
    # Below the ready count: pending none, ready ones go at once.
    undo = sim.apply(ScaleAction(node="api", replicas=3))
    assert undo == ScaleAction(node="api", replicas=5)
    assert _replicas(sim) == 3 and sim.provisioned()["api"] == 3


def test_a_cancelled_scale_up_never_arrives() -> None:
    sim = _sim(120)
    sim.apply(ScaleAction(node="api", replicas=6))
    sim.apply(ScaleAction(node="api", replicas=2))
    sim.run(300, dt=30)
    assert _replicas(sim) == 2 and sim.provisioned()["api"] == 2


def test_a_replica_loss_lowers_ready_and_spec_alike() -> None:
    sim = _sim(120, faults=[{"kind": "replicas_lost", "node": "api", "at": 30, "replicas": 1}])
    sim.apply(ScaleAction(node="api", replicas=4))
    sim.run(30, dt=30)
    assert _replicas(sim) == 1 and sim.provisioned()["api"] == 3
    sim.run(90, dt=30)
    assert _replicas(sim) == 3


def test_a_fork_keeps_its_own_pending_replicas() -> None:
    sim = _sim(120)
    sim.apply(ScaleAction(node="api", replicas=4))
    fork = sim.fork()
    fork.apply(ScaleAction(node="api", replicas=2))
    sim.run(120, dt=30)
    fork.run(120, dt=30)
    assert _replicas(sim) == 4 and _replicas(fork) == 2
