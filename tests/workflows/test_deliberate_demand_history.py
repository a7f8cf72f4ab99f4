"""The deliberate activity reads the demand history for the agent and records the demand it trusts.

The history stays between the activity and its store: nothing of it crosses into the loop's
workflow history, and a store that fails or hangs costs the tick its forecasts, never the tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

import workflows.activities as activities_module
from agents import AgentState, Decision, decide, load_desires
from agents.forecast import DemandHistory
from controller.adapters.demand_history import SqlDemandHistory
from controller.core.db import create_engine, migrate
from controller.testing import FakeDemandHistory
from tests.workflows.conftest import make_simulator
from twin.contract import Snapshot
from twin.sources import FileSource
from workflows.activities import AgentActivities, DeliberateInput, DeliberateResult
from workflows.ports import DemandHistoryStore


class BrokenDemandHistory:
    """A store that is down (raises) or hangs (never answers)."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.calls: list[str] = []

    async def _fail(self, what: str) -> Any:
        self.calls.append(what)
        if self.hang:
            await asyncio.Event().wait()
        raise ConnectionError("could not connect to server: Connection refused")

    async def read(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        result: DemandHistory = await self._fail("read")
        return result

    async def record(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        result: int = await self._fail("record")
        return result


class DecideSpy:
    """The real `decide`, remembering the demand history it was given; optionally doubting some beliefs."""

    def __init__(
        self,
        real: Any,
        *,
        doubt: frozenset[str] = frozenset(),
        unknowable: frozenset[str] = frozenset(),
        stale: bool = False,
    ) -> None:
        self.real = real
        self.doubt = doubt
        self.unknowable = unknowable
        self.stale = stale
        self.histories: list[DemandHistory | None] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Decision:
        self.histories.append(kwargs.get("demand_history"))
        decision: Decision = self.real(*args, **kwargs)
        nodes = {
            n: b.model_copy(
                update={
                    **({"confidence": 0.1} if n in self.doubt else {}),
                    **({"demand": math.nan} if n in self.unknowable else {}),
                }
            )
            for n, b in decision.beliefs.nodes.items()
        }
        beliefs = decision.beliefs.model_copy(update={"nodes": nodes, "stale": decision.beliefs.stale or self.stale})
        return decision.model_copy(update={"beliefs": beliefs})


@pytest.fixture
def snapshot() -> Snapshot:
    """A fresh snapshot of the shop (gateway -> catalog, checkout -> payments, orders-db)."""
    return make_simulator("hidden_downstream.yaml").snapshot()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> DecideSpy:
    spy = DecideSpy(decide)
    monkeypatch.setattr(activities_module, "decide", spy)
    return spy


def agent(store: DemandHistoryStore | None) -> AgentActivities:
    """The agent's activities; deliberate never asks the twin source (the snapshot comes in its input)."""
    return AgentActivities(FileSource(Path("unused.json")), load_desires(None), store)


async def deliberate(acts: AgentActivities, snapshot: Snapshot) -> DeliberateResult:
    """One tick through the activity, in an activity context; a tick waiting on a hung store fails."""
    run = ActivityEnvironment().run(acts.deliberate, DeliberateInput(state=AgentState(), snapshot=snapshot))
    result: DeliberateResult = await asyncio.wait_for(run, timeout=20)
    return result


async def test_deliberate_reads_the_history_and_records_trusted_demand(snapshot: Snapshot, spy: DecideSpy) -> None:
    store = FakeDemandHistory()
    earlier = snapshot.observed_at - timedelta(minutes=10)
    await store.record(snapshot.twin_id, earlier, {"gateway": 1000.0})
    stored = store.recorders["shop"].history()
    await deliberate(agent(store), snapshot)
    # Read: this twin's history up to the twin's own time (a simulator's clock need not be ours), of
    # the nodes without inflow only (forecasts are made at the entries), handed to decide().
    ((twin, now, nodes),) = store.reads
    fed = {e.target for e in snapshot.edges}
    assert twin == snapshot.twin_id and now == snapshot.observed_at
    assert nodes == tuple(sorted(n.id for n in snapshot.nodes if n.id not in fed)) == ("gateway",)
    (given,) = spy.histories
    assert given == stored and len(stored) == 1
    # Recorded: every node's believed demand, at the snapshot's time (not the clock's).
    twin, at, demand, kept = store.records[-1]
    assert (twin, at) == (snapshot.twin_id, snapshot.observed_at)
    assert set(demand) == {n.id for n in snapshot.nodes} and kept == len(demand)
    assert demand["gateway"] == pytest.approx(1200.0) and demand["checkout"] == pytest.approx(480.0)


async def test_only_trusted_finite_demand_is_recorded(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = DecideSpy(decide, doubt=frozenset({"catalog"}), unknowable=frozenset({"payments"}))
    monkeypatch.setattr(activities_module, "decide", spy)
    store = FakeDemandHistory()
    await deliberate(agent(store), snapshot)
    (_, _, demand, _) = store.records[-1]
    assert set(demand) == {"gateway", "checkout", "orders-db"}


async def test_a_stale_snapshot_is_not_recorded(snapshot: Snapshot, spy: DecideSpy) -> None:
    stale = snapshot.model_copy(update={"observed_at": datetime.now(UTC) - timedelta(hours=2)})
    store = FakeDemandHistory()
    await deliberate(agent(store), stale)
    assert len(store.reads) == 1 and store.records == []


async def test_stale_beliefs_are_not_recorded_even_when_trusted(
    snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staleness alone keeps a tick out of the history, whatever the beliefs' confidence."""
    monkeypatch.setattr(activities_module, "decide", DecideSpy(decide, stale=True))
    store = FakeDemandHistory()
    await deliberate(agent(store), snapshot)
    assert store.records == []


async def test_a_retried_tick_records_once(snapshot: Snapshot, tmp_path: Path) -> None:
    """Temporal retries deliberate with the same input: the SQL store counts the snapshot once."""
    engine = create_engine(f"sqlite:///{tmp_path / 'twinops.db'}")
    migrate(engine)
    store = SqlDemandHistory(engine)
    acts = agent(store)
    for _ in range(3):
        await deliberate(acts, snapshot)
    history = await store.read(snapshot.twin_id, snapshot.observed_at)
    assert set(history.series) == {n.id for n in snapshot.nodes}
    assert all(len(points) == 1 for points in history.series.values())
    (point,) = history.of("gateway")
    assert point[1] == pytest.approx(1200.0)
    engine.dispose()


@pytest.mark.parametrize("hang", [False, True], ids=["store down", "store hangs"])
async def test_a_failing_store_does_not_fail_the_tick(
    snapshot: Snapshot,
    spy: DecideSpy,
    hang: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(activities_module, "DEMAND_HISTORY_TIMEOUT_SECONDS", 0.2)
    broken = BrokenDemandHistory(hang=hang)
    without = await deliberate(agent(None), snapshot)
    with caplog.at_level(logging.WARNING):
        got = await deliberate(agent(broken), snapshot)
    assert got == without  # decided as without a store
    assert spy.histories == [None, None]
    assert broken.calls == ["read", "record"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("demand history of twin 'shop' unreadable, deciding without forecasts" in w for w in warnings)
    assert any("demand history of twin 'shop' not recorded" in w for w in warnings)


async def test_the_history_does_not_enter_the_workflow_history(snapshot: Snapshot) -> None:
    """What the tick hands back to the loop (its history) does not grow with the demand history."""
    empty = await deliberate(agent(FakeDemandHistory()), snapshot)
    store = FakeDemandHistory()
    start = snapshot.observed_at - timedelta(days=3)
    for i in range(3 * 288):  # three days of five-minute buckets for every node
        at = start + timedelta(minutes=5 * i)
        await store.record(snapshot.twin_id, at, {n.id: 100.0 + i % 288 for n in snapshot.nodes})
    assert len(store.recorders["shop"].history()) == 5 * 3 * 288
    full = await deliberate(agent(store), snapshot)
    assert len(full.model_dump_json()) < len(empty.model_dump_json()) + 4096
