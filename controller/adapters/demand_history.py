"""`SqlDemandHistory`: the `DemandHistoryStore` port on SQLAlchemy (table `demand_history`, migration 0008).

Per twin and node, one row per time bucket (`bucket_seconds`, 5 minutes by default) holds the sum
and count of the offered demand observed in it and when it was last observed. The semantics are
`agents.forecast.DemandRecorder`'s, which the tests hold this store to:

- a bucket's value is the mean of the observations recorded in it;
- an observation not newer than the last one recorded for its node is ignored, so the deliberate
  activity, retried by Temporal, never records a tick twice;
- non-finite or negative values are skipped;
- buckets older than `retention_seconds` (14 days by default) before the twin's newest observation
  are deleted.

A record is one transaction, serialized per twin (SQLite's `BEGIN IMMEDIATE`, a transaction-level
advisory lock on PostgreSQL): one SELECT of the twin's rows in the current bucket and later (about
one per node), one executemany of upserts, and, when the observation moves the retention cut-off
into a new bucket, one ranged DELETE on the (twin_id, bucket_start) index. Each upsert also adds
only when its observation is newer than the row's, so a late duplicate cannot count twice even
without the lock. Blocking database work runs on the store's own two threads; a call that finds both
busy (a hung database) is refused at once, so ticks never queue behind it or starve the worker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from agents.forecast import BUCKET_SECONDS, RETENTION_SECONDS, DemandHistory
from controller.core.db import UtcDateTime, sqlite_immediate
from controller.core.errors import ConfigurationError
from twinops import TwinopsError

__all__ = ["SqlDemandHistory", "demand_history", "metadata"]

_LOCK_CLASS = 0x74776468  # "twdh": the first key of the per-twin advisory lock on PostgreSQL


metadata = MetaData()
"""Metadata of the demand history table (the schema itself is created by migration 0008)."""

demand_history = Table(
    "demand_history",
    metadata,
    Column("twin_id", Text(), primary_key=True),
    Column("node", Text(), primary_key=True),
    Column("bucket_start", BigInteger(), primary_key=True),
    Column("demand_sum", Double(), nullable=False),
    Column("samples", Integer(), nullable=False),
    Column("last_observed_at", UtcDateTime(), nullable=False),
    CheckConstraint("samples > 0", name="ck_demand_history_samples"),
    Index("ix_demand_history_bucket", "twin_id", "bucket_start"),
)
"""One row per twin, node and bucket: sum and count of the demand observed in it (epoch-second bucket start)."""

_D = demand_history.c


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


MAX_IN_FLIGHT = 2
"""Store calls running at once (two twins' ticks may overlap); more are refused, never queued."""

_T = TypeVar("_T")


class DemandHistoryBusyError(TwinopsError, RuntimeError):
    """Every thread of the store is still on an earlier call: this one is refused (the tick goes on without)."""


class SqlDemandHistory:
    """Bucketed per-node demand on SQLite or PostgreSQL; the schema must be migrated (`controller.core.db.migrate`).

    `bucket_seconds` is a whole number of seconds (rows are keyed by their bucket's start in
    epoch seconds); `retention_seconds` is how much history is kept and read.
    """

    def __init__(
        self, engine: Engine, bucket_seconds: int = int(BUCKET_SECONDS), retention_seconds: float = RETENTION_SECONDS
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"demand history: database {dialect!r} is not supported (sqlite, postgresql)")
        if isinstance(bucket_seconds, bool) or int(bucket_seconds) != bucket_seconds or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be a positive whole number of seconds, not {bucket_seconds!r}")
        if not retention_seconds > 0 or not math.isfinite(retention_seconds):
            raise ValueError(f"retention_seconds must be positive, not {retention_seconds!r}")
        self.bucket_seconds = int(bucket_seconds)
        self.retention_seconds = float(retention_seconds)
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Its own threads, never the event loop's default pool: a hung database holds at most these,
        # and a call that finds them all busy is refused at once instead of queueing behind them.
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="twinops-demand-history")
        self._in_flight = 0

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._in_flight >= MAX_IN_FLIGHT:
            raise DemandHistoryBusyError(
                f"demand history: {self._in_flight} earlier calls still running (a slow or hung database); skipped"
            )
        self._in_flight += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _future: Future[Any]) -> None:
        self._in_flight -= 1

    def _start(self, t: float) -> int:
        """Start (epoch seconds) of the bucket holding time `t`."""
        return math.floor(t / self.bucket_seconds) * self.bucket_seconds

    def _cutoff(self, t: float) -> int:
        """Start of the oldest bucket kept when the newest observation is at `t`."""
        return self._start(t - self.retention_seconds)

    # ---- read ----------------------------------------------------------------------------

    async def read(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        """The twin's buckets (of `nodes`, default all) over the retention window before `now`; empty if unknown.

        Forecasting needs only the entry nodes' series: asking for those keeps a 1,000-node twin's
        read to its entries x buckets instead of every node's two weeks.
        """
        return await self._run(self.read_sync, twin_id, now, nodes)

    def read_sync(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        """`read` for callers that are not on an event loop."""
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now.isoformat()}: give `now` a time zone")
        query = (
            select(_D.node, _D.bucket_start, _D.demand_sum, _D.samples)
            .where(_D.twin_id == twin_id, _D.bucket_start >= self._cutoff(now.timestamp()))
            .order_by(_D.node, _D.bucket_start)
        )
        if nodes is not None:
            query = query.where(_D.node.in_(sorted(set(nodes))))
        series: dict[str, list[tuple[float, float]]] = {}
        with self._engine.connect() as conn:
            for node, start, total, samples in conn.execute(query):
                series.setdefault(node, []).append((float(start), total / samples))
        return DemandHistory(
            series={node: tuple(points) for node, points in series.items()},
            bucket_seconds=float(self.bucket_seconds),
        )

    # ---- record --------------------------------------------------------------------------

    async def record(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        """Add one observation per node (finite, >= 0 values only); return how many were kept."""
        return await self._run(self.record_sync, twin_id, observed_at, demand)

    def record_sync(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        """`record` for callers that are not on an event loop."""
        if observed_at.tzinfo is None:
            raise ValueError(f"naive datetime {observed_at.isoformat()}: give `observed_at` a time zone")
        at = observed_at.astimezone(UTC)
        t = at.timestamp()
        start = self._start(t)
        values = {node: float(v) for node, v in demand.items() if _usable(v)}
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_LOCK_CLASS, func.hashtext(twin_id))))
            # A node's newest row holds its last observation, and it is in this bucket or a later one
            # exactly when that observation is not older than this bucket: one indexed range finds both.
            later: set[str] = set()
            here: dict[str, datetime] = {}
            newest: datetime | None = None
            for node, bucket, last in conn.execute(
                select(_D.node, _D.bucket_start, _D.last_observed_at).where(
                    _D.twin_id == twin_id, _D.bucket_start >= start
                )
            ):
                newest = last if newest is None else max(newest, last)
                if bucket > start:
                    later.add(node)
                else:
                    here[node] = last
            rows: list[dict[str, Any]] = [
                {
                    "twin_id": twin_id,
                    "node": node,
                    "bucket_start": start,
                    "demand_sum": value,
                    "samples": 1,
                    "last_observed_at": at,
                }
                for node, value in values.items()
                if node not in later and (node not in here or here[node] < at)
            ]
            if rows:
                stmt = self._insert(demand_history)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[_D.twin_id, _D.node, _D.bucket_start],
                    set_={
                        "demand_sum": _D.demand_sum + stmt.excluded.demand_sum,
                        "samples": _D.samples + stmt.excluded.samples,
                        "last_observed_at": stmt.excluded.last_observed_at,
                    },
                    where=_D.last_observed_at < stmt.excluded.last_observed_at,
                )
                conn.execute(stmt, rows)
            # Prune when this observation is the twin's newest and moves the cut-off into a new bucket
            # (at most once per bucket; earlier calls already pruned up to their own cut-off).
            if newest is None or (at > newest and self._cutoff(t) > self._cutoff(newest.timestamp())):
                conn.execute(delete(demand_history).where(_D.twin_id == twin_id, _D.bucket_start < self._cutoff(t)))
        return len(rows)
