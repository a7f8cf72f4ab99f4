"""The SQL demand history on SQLite and PostgreSQL: the reference recorder's semantics, retries, pruning, scale."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, func, inspect, select

from agents.forecast import DAY, DemandHistory, DemandRecorder
from controller.adapters.demand_history import (
    MAX_IN_FLIGHT,
    DemandHistoryBusyError,
    SqlDemandHistory,
    demand_history,
)
from controller.adapters.demand_history import metadata as demand_metadata
from controller.core.db import create_engine, migrate
from controller.core.errors import ConfigurationError
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import alembic, assert_models_match_the_migrations
from workflows.ports import DemandHistoryStore

# The audit suite's database fixtures: a SQLite file per test, and a fresh PostgreSQL schema per
# test (skipped, with the reason, when PostgreSQL is unreachable; failed in CI).
sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # a bucket boundary (5 min and 1 min)


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    return engine_factory()


@pytest.fixture
def store(engine: Engine) -> SqlDemandHistory:
    return SqlDemandHistory(engine, bucket_seconds=300, retention_seconds=3600)


def nonempty(history: DemandHistory) -> dict[str, tuple[tuple[float, float], ...]]:
    """The series that have points (the recorder keeps a node's empty series after pruning; a gap is absent)."""
    return {node: points for node, points in history.series.items() if points}


def table_rows(engine: Engine, twin_id: str | None = None) -> list[Any]:
    query = select(demand_history).order_by(
        demand_history.c.twin_id, demand_history.c.node, demand_history.c.bucket_start
    )
    if twin_id is not None:
        query = query.where(demand_history.c.twin_id == twin_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def test_implements_the_port(store: SqlDemandHistory) -> None:
    assert isinstance(store, DemandHistoryStore)


def test_only_sqlite_and_postgresql() -> None:
    from sqlalchemy import create_mock_engine

    mock = create_mock_engine("mysql://", executor=lambda *a, **k: None)
    with pytest.raises(ConfigurationError, match="'mysql' is not supported"):
        SqlDemandHistory(mock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bucket", "retention", "match"),
    [
        (0, 3600.0, "bucket_seconds"),
        (-300, 3600.0, "bucket_seconds"),
        (2.5, 3600.0, "whole number"),
        (300, 0.0, "retention_seconds"),
        (300, math.inf, "retention_seconds"),
    ],
)
def test_widths_must_be_positive(engine: Engine, bucket: Any, retention: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SqlDemandHistory(engine, bucket_seconds=bucket, retention_seconds=retention)


# ---- the reference semantics ---------------------------------------------------------------


def _random_calls(rng: random.Random, bucket: int) -> list[tuple[datetime, dict[str, float]]]:
    """Observations as a live loop makes them, and the odd ones a retry or a clock makes.

    Mostly advancing times (several per bucket, gaps of hours that cross the retention), with
    repeats of the last time (retries), earlier times (late arrivals), nodes coming and going,
    and values that must be skipped (NaN, infinities, negatives).
    """
    nodes = [f"n{i}" for i in range(6)]
    t = T0 + timedelta(microseconds=rng.randrange(10**6))
    calls: list[tuple[datetime, dict[str, float]]] = []
    for _ in range(120):
        roll = rng.random()
        if roll < 0.1 and calls:
            at = calls[-1][0]  # a retry of the last call
        elif roll < 0.2 and calls:
            at = calls[-1][0] - timedelta(seconds=rng.uniform(0, 3 * bucket))  # late
        else:
            step = rng.choice([rng.uniform(0, bucket / 3), rng.uniform(0, 2 * bucket), rng.uniform(0, 2 * 3600)])
            t += timedelta(seconds=step, microseconds=rng.randrange(1, 1000))
            at = t
        demand: dict[str, float] = {}
        for node in rng.sample(nodes, rng.randint(0, len(nodes))):
            kind = rng.random()
            if kind < 0.05:
                demand[node] = rng.choice([math.nan, math.inf, -math.inf])
            elif kind < 0.1:
                demand[node] = -rng.uniform(0.001, 50)
            elif kind < 0.15:
                demand[node] = 0.0
            else:
                demand[node] = rng.uniform(0, 2000)
        calls.append((at, demand))
    return calls


def _assert_same(got: DemandHistory, want: DemandHistory) -> None:
    assert got.bucket_seconds == want.bucket_seconds
    got_series, want_series = nonempty(got), nonempty(want)
    assert sorted(got_series) == sorted(want_series)
    for node, points in want_series.items():
        assert [t for t, _ in got_series[node]] == [t for t, _ in points], node
        assert [v for _, v in got_series[node]] == pytest.approx([v for _, v in points], rel=1e-12, abs=1e-12), node


@pytest.mark.parametrize(
    ("bucket", "retention"),
    [(300, 3 * 3600.0), (60, 3600.0 + 30.0), (300, 14 * DAY)],
    ids=["5min-3h", "1min-1h30s (retention off the bucket grid)", "5min-14d"],
)
@pytest.mark.parametrize("seed", range(4))
async def test_agrees_with_the_reference_recorder(engine: Engine, bucket: int, retention: float, seed: int) -> None:
    """Same observations, same buckets, same means, same kept counts, same pruning as `DemandRecorder`."""
    rng = random.Random(seed * 1000 + bucket)
    store = SqlDemandHistory(engine, bucket_seconds=bucket, retention_seconds=retention)
    recorder = DemandRecorder(bucket_seconds=bucket, retention_seconds=retention)
    twin = f"twin-{seed}"
    newest = -math.inf
    for i, (at, demand) in enumerate(_random_calls(rng, bucket)):
        assert await store.record(twin, at, demand) == recorder.record(at, demand), f"call {i} at {at}"
        newest = max(newest, at.timestamp())
        if i % 17 == 0 or i == 119:
            now = datetime.fromtimestamp(newest, UTC)
            _assert_same(await store.read(twin, now), recorder.history())
    # Pruned rows are gone from the table, not only filtered out of reads.
    oldest = math.floor((newest - retention) / bucket) * bucket
    assert all(row.bucket_start >= oldest for row in table_rows(engine, twin))


async def test_a_bucket_keeps_the_mean_of_its_observations(store: SqlDemandHistory, engine: Engine) -> None:
    for seconds, value in ((0, 100.0), (15, 200.0), (299, 600.0), (300, 50.0)):
        assert await store.record("shop", T0 + timedelta(seconds=seconds), {"gateway": value}) == 1
    history = await store.read("shop", T0 + timedelta(seconds=301))
    start = T0.timestamp()
    assert history.of("gateway") == ((start, 300.0), (start + 300, 50.0))
    assert history.bucket_seconds == 300.0
    assert [(r.bucket_start, r.samples, r.demand_sum) for r in table_rows(engine)] == [
        (int(start), 3, 900.0),
        (int(start) + 300, 1, 50.0),
    ]


async def test_a_retried_record_adds_nothing(store: SqlDemandHistory, engine: Engine) -> None:
    demand = {"gateway": 1200.0, "checkout": 480.0}
    assert await store.record("shop", T0 + timedelta(seconds=10), demand) == 2
    before = table_rows(engine)
    for _ in range(3):  # Temporal retries the activity: same snapshot, same observed_at
        assert await store.record("shop", T0 + timedelta(seconds=10), demand) == 0
    assert table_rows(engine) == before
    assert [r.samples for r in before] == [1, 1]


async def test_the_same_moment_in_another_time_zone_is_a_retry(store: SqlDemandHistory) -> None:
    at = T0 + timedelta(seconds=10)
    assert await store.record("shop", at, {"gateway": 100.0}) == 1
    assert await store.record("shop", at.astimezone(timezone(timedelta(hours=5, minutes=30))), {"gateway": 900.0}) == 0
    assert (await store.read("shop", at)).of("gateway") == ((T0.timestamp(), 100.0),)


async def test_older_observations_are_ignored_per_node(store: SqlDemandHistory) -> None:
    assert await store.record("shop", T0 + timedelta(seconds=400), {"gateway": 100.0}) == 1
    # Earlier in the same bucket, and in an earlier bucket: gateway has newer, checkout nothing yet.
    assert await store.record("shop", T0 + timedelta(seconds=350), {"gateway": 999.0, "checkout": 10.0}) == 1
    assert await store.record("shop", T0 + timedelta(seconds=100), {"gateway": 999.0, "checkout": 20.0}) == 0
    history = await store.read("shop", T0 + timedelta(seconds=400))
    start = T0.timestamp()
    assert history.of("gateway") == ((start + 300, 100.0),)
    assert history.of("checkout") == ((start + 300, 10.0),)


async def test_unusable_values_are_skipped(store: SqlDemandHistory) -> None:
    demand = {"a": math.nan, "b": math.inf, "c": -1.0, "d": 0.0, "e": 7.5}
    assert await store.record("shop", T0, demand) == 2
    assert nonempty(await store.read("shop", T0)) == {"d": ((T0.timestamp(), 0.0),), "e": ((T0.timestamp(), 7.5),)}


async def test_naive_times_are_refused(store: SqlDemandHistory) -> None:
    with pytest.raises(ValueError, match="time zone"):
        await store.record("shop", T0.replace(tzinfo=None), {"a": 1.0})
    with pytest.raises(ValueError, match="time zone"):
        await store.read("shop", T0.replace(tzinfo=None))


async def test_buckets_beyond_the_retention_are_pruned(store: SqlDemandHistory, engine: Engine) -> None:
    """Retention 1 h: an observation 2 h later deletes the old rows of that twin, and only of that twin."""
    await store.record("shop", T0, {"gateway": 1.0, "checkout": 2.0})
    await store.record("shop", T0 + timedelta(minutes=50), {"gateway": 3.0})
    await store.record("other", T0, {"gateway": 4.0})
    assert len(table_rows(engine, "shop")) == 3
    await store.record("shop", T0 + timedelta(hours=2), {"gateway": 5.0})
    start = int(T0.timestamp())
    assert [(r.node, r.bucket_start) for r in table_rows(engine, "shop")] == [("gateway", start + 7200)]
    assert [(r.node, r.bucket_start) for r in table_rows(engine, "other")] == [("gateway", start)]
    # An observation that keeps nothing still moves the twin's newest time, as the recorder's does.
    await store.record("other", T0 + timedelta(hours=3), {"gateway": math.nan})
    assert table_rows(engine, "other") == []


async def test_the_retention_edge_is_kept(store: SqlDemandHistory, engine: Engine) -> None:
    """Exactly one retention before the newest bucket stays; the bucket before it goes."""
    await store.record("shop", T0 - timedelta(seconds=1), {"gateway": 1.0})
    await store.record("shop", T0, {"gateway": 2.0})
    await store.record("shop", T0 + timedelta(hours=1), {"gateway": 3.0})
    start = int(T0.timestamp())
    assert [r.bucket_start for r in table_rows(engine)] == [start, start + 3600]


async def test_a_retention_off_the_bucket_grid_prunes_within_a_bucket(engine: Engine) -> None:
    """Retention 1 h 30 s, 1-min buckets: the cut-off moves half-way through a bucket, and pruning follows it."""
    store = SqlDemandHistory(engine, bucket_seconds=60, retention_seconds=3630)
    start = int(T0.timestamp())
    await store.record("shop", T0 - timedelta(seconds=55), {"gateway": 1.0})  # bucket T0 - 60
    await store.record("shop", T0 + timedelta(seconds=3605), {"gateway": 2.0})  # cut-off T0 - 60: kept
    assert [r.bucket_start for r in table_rows(engine)] == [start - 60, start + 3600]
    await store.record("shop", T0 + timedelta(seconds=3640), {"gateway": 3.0})  # same bucket, cut-off T0
    assert [r.bucket_start for r in table_rows(engine)] == [start + 3600]


async def test_concurrent_duplicates_count_once(engine_factory: Callable[[], Engine]) -> None:
    """A timed-out attempt still running beside its retry (separate connections): the observation counts once."""
    stores = [SqlDemandHistory(engine_factory(), bucket_seconds=300, retention_seconds=3600) for _ in range(4)]
    demand = {f"svc-{i:03d}": float(i) for i in range(200)}
    at = T0 + timedelta(seconds=30)
    kept = await asyncio.gather(*(s.record("shop", at, demand) for s in stores))
    assert sum(kept) == 200
    rows = table_rows(engine_factory())
    assert len(rows) == 200 and {r.samples for r in rows} == {1}


async def test_read_returns_the_retention_window_before_now(store: SqlDemandHistory) -> None:
    for minutes in range(0, 125, 5):
        await store.record("shop", T0 + timedelta(minutes=minutes), {"gateway": float(minutes)})

    def starts(history: DemandHistory) -> list[float]:
        return [(t - T0.timestamp()) / 60 for t, _ in history.of("gateway")]

    assert starts(await store.read("shop", T0 + timedelta(minutes=120))) == [float(m) for m in range(60, 125, 5)]
    # Read later than the newest observation: only the last hour before `now`, though more is stored.
    assert starts(await store.read("shop", T0 + timedelta(minutes=150))) == [float(m) for m in range(90, 125, 5)]
    assert (await store.read("shop", T0 + timedelta(minutes=150))).of("gateway")[-1] == (
        (T0 + timedelta(minutes=120)).timestamp(),
        120.0,
    )


async def test_read_of_an_unknown_twin_is_empty(store: SqlDemandHistory) -> None:
    await store.record("shop", T0, {"gateway": 1.0})
    history = await store.read("nobody", T0)
    assert history.series == {} and len(history) == 0 and history.bucket_seconds == 300.0


async def test_read_of_some_nodes_returns_only_theirs(store: SqlDemandHistory) -> None:
    await store.record("shop", T0, {"gateway": 1.0, "web": 2.0, "db": 3.0})
    history = await store.read("shop", T0 + timedelta(seconds=1), ["gateway", "db", "absent"])
    assert set(history.series) == {"gateway", "db"}
    assert (await store.read("shop", T0 + timedelta(seconds=1), [])).series == {}


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """The statements (first word, executemany) sent to the database meanwhile."""
    seen: list[tuple[str, bool]] = []

    def before(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        seen.append((sql.split(None, 1)[0].upper(), executemany))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_a_thousand_nodes_record_in_one_call(store: SqlDemandHistory, engine: Engine) -> None:
    demand = {f"svc-{i:04d}": float(i) for i in range(1000)}
    with statements(engine) as seen:
        assert await store.record("shop", T0 + timedelta(seconds=1), demand) == 1000
    with statements(engine) as again:
        assert await store.record("shop", T0 + timedelta(seconds=16), {n: v + 1 for n, v in demand.items()}) == 1000
    with statements(engine) as retried:
        assert await store.record("shop", T0 + timedelta(seconds=16), demand) == 0
    # A bounded number of statements, however many nodes: no query per node.
    for run in (seen, again, retried):
        assert len([s for s in run if s[0] not in ("BEGIN", "COMMIT")]) <= 4, run
    assert sum(1 for word, _ in again if word == "INSERT") <= 2, again
    history = await store.read("shop", T0 + timedelta(seconds=20))
    assert len(history.series) == 1000
    assert history.of("svc-0999") == ((T0.timestamp(), 999.5),)
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(demand_history.c.samples))).scalar_one() == 2000


# ---- schema --------------------------------------------------------------------------------


def test_models_match_the_migration(engine: Engine) -> None:
    """What the code declares is what migration 0008 built (types, nullability, indexes, constraints)."""
    assert_models_match_the_migrations(engine, demand_metadata)


async def test_migration_0008_down_and_up(engine: Engine) -> None:
    alembic(engine, command.downgrade, "0007_web_sessions_inbox_team")
    assert "demand_history" not in inspect(engine).get_table_names()
    alembic(engine, command.upgrade, "head")
    assert "demand_history" in inspect(engine).get_table_names()
    store = SqlDemandHistory(engine)
    assert await store.record("shop", T0, {"gateway": 1.0}) == 1


async def test_a_hung_database_holds_at_most_two_threads_and_later_calls_are_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'hung.db'}")
    migrate(engine)
    store = SqlDemandHistory(engine)
    release = threading.Event()

    def hang(*_args: object) -> DemandHistory:
        release.wait(10)
        return DemandHistory()

    monkeypatch.setattr(store, "read_sync", hang)
    stuck = [asyncio.ensure_future(store.read("shop", T0)) for _ in range(MAX_IN_FLIGHT)]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    with pytest.raises(DemandHistoryBusyError, match="still running"):
        await store.record("shop", T0, {"gateway": 1.0})
    assert time.perf_counter() - started < 0.5  # refused, not queued behind the hung calls
    release.set()
    assert [len(h) for h in await asyncio.gather(*stuck)] == [0] * MAX_IN_FLIGHT
    assert await store.record("shop", T0, {"gateway": 1.0}) == 1  # free again once they return
