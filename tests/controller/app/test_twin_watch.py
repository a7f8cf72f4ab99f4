"""The twin watcher: a changed twin wakes the agent loop at once; noise and small moves do not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.live_twin import WallClockSimulatorSource
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.twin_watch import TwinChange, TwinWatcher, describe_change, loop_waker, watcher_for, watching
from controller.core.settings import Settings
from tests.controller.api.conftest import running_stack
from tests.workflows.conftest import Stack, eventually
from tests.workflows.test_event_ticks import _end, _start_quiet_loop
from twin.contract import Snapshot, parse_snapshot
from twin.sources import TwinSourceError
from workflows import AgentLoopWorkflow
from workflows.agent_loop import WakeUp


def one(ext: float, replicas: int = 10, *, node: str = "api") -> Snapshot:
    """One node of 100 rps per replica: demand utilization is ext / (replicas x 100)."""
    return parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": "t",
            "observed_at": datetime.now(UTC).isoformat(),
            "nodes": [
                {"id": node, "replicas": replicas, "capacity_per_replica": 100.0, "max_replicas": 50,
                 "external_arrival_rate": ext}
            ],
        }
    )  # fmt: skip


RULE = TwinChange(target=0.8, hysteresis=0.05, min_step=0.15)


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (one(700), one(820), "api demand 70% -> 82% of capacity"),  # crossed the target upwards
        (one(820), one(780), None),  # back under, but inside the hysteresis band: noise
        (one(820), one(740), "api demand 82% -> 74% of capacity"),  # clearly under
        (one(300), one(440), None),  # a 14-point move, under the target
        (one(300), one(460), "api demand 30% -> 46% of capacity"),  # a 16-point move
        (one(500), one(500, replicas=8), "api replicas 10 -> 8"),
        (one(500), one(500, node="db"), "db appeared; api left"),
        (one(500), one(505), None),
    ],
)
def test_what_counts_as_a_change(before: Snapshot, after: Snapshot, said: str | None) -> None:
    assert describe_change(before, after, RULE) == said


class _Source:
    def __init__(self, *snapshots: Snapshot | Exception) -> None:
        self.left = list(snapshots)

    async def latest(self) -> Snapshot:
        item = self.left.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


async def test_the_watcher_wakes_once_per_change_and_skips_failed_reads() -> None:
    woken: list[WakeUp] = []

    async def wake(w: WakeUp) -> None:
        woken.append(w)

    watcher = TwinWatcher(
        _Source(one(500), TwinSourceError("down"), one(505), one(900), one(905), one(400)), wake, min_gap=0.0, rule=RULE
    )
    results = [await watcher.check() for _ in range(6)]
    assert results == [None, None, None, "api demand 50% -> 90% of capacity", None, "api demand 90% -> 40% of capacity"]
    assert [w.reason for w in woken] == ["changed", "changed"] and watcher.woken == 2


async def test_wake_ups_are_spaced_and_a_failed_wake_is_tried_on_the_next_change() -> None:
    calls: list[str] = []

    async def flaky(w: WakeUp) -> None:
        calls.append(w.detail)
        if len(calls) == 1:
            raise RuntimeError("loop not running")

    watcher = TwinWatcher(_Source(one(500), one(900), one(900), one(300)), flaky, min_gap=3600.0, rule=RULE)
    assert [await watcher.check() for _ in range(4)] == [None, None, "api demand 50% -> 90% of capacity", None]
    assert len(calls) == 2  # the first wake failed, so the next read tried again; then the gap holds


def test_the_simulator_is_watched_by_default_and_other_sources_only_when_asked(tmp_path: Any) -> None:
    source = _Source()
    client: Any = object()
    assert watcher_for(Settings(home=tmp_path), source, client, "l") is not None
    assert watcher_for(Settings(home=tmp_path, twin_source="http"), source, client, "l") is None
    watched = watcher_for(Settings(home=tmp_path, twin_source="http", twin_watch_seconds=2), source, client, "l")
    assert watched is not None and watched.interval == 2
    assert watcher_for(Settings(home=tmp_path, twin_watch_seconds=0), source, client, "l") is None


@pytest.mark.integration
async def test_a_watched_simulator_gets_a_proposal_long_before_the_tick(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    async with running_stack(temporal, tmp_path) as stack:
        await _watched(stack)


async def _watched(stack: Stack) -> None:
    handle, undo = await _start_quiet_loop(stack)
    watcher = TwinWatcher(WallClockSimulatorSource(stack.simulator), loop_waker(stack.client, handle.id), interval=0.2)
    async with watching(watcher):
        await asyncio.sleep(0.5)  # it has read the healthy estate
        for action in undo:
            stack.simulator.apply(action)
        status = await eventually(
            lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.proposals_started >= 1, within=15
        )
    await _end(stack, handle)
    assert status.woken >= 1 and watcher.woken >= 1, status
