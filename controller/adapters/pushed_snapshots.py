"""Snapshots pushed to the API (`POST /api/v1/twins/{id}/snapshots`), and the `push` twin source reading them.

`SqlPushedSnapshots` keeps each twin's pushed snapshots in table `twin_snapshots` (migration
0011), one row per twin and observation time: a push its sender retries is stored once. Only
the newest `KEEP_PER_TWIN` of a twin are kept. `PushedTwinSource` is the `TwinSource` of
`TWINOPS_TWIN_SOURCE=push`: the newest pushed snapshot, refused when older than
`twin_max_age_seconds` (a pusher that stopped means no snapshot, not an old one acted on).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, UniqueConstraint, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from controller.core.db import UtcDateTime, sqlite_immediate
from controller.core.errors import ConfigurationError
from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.sources import TwinSourceError, check_fresh

__all__ = ["KEEP_PER_TWIN", "PushedTwinSource", "SqlPushedSnapshots", "StoredPush", "metadata", "twin_snapshots"]

KEEP_PER_TWIN = 500
"""Pushed snapshots kept per twin (the newest); older ones are deleted as new ones arrive."""

metadata = MetaData()
"""Metadata of the pushed snapshots table (the schema itself is created by migration 0011)."""

twin_snapshots = Table(
    "twin_snapshots",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("twin_id", String(200), nullable=False),
    Column("observed_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("pushed_by", String(200), nullable=False),
    Column("body", Text(), nullable=False),
    UniqueConstraint("twin_id", "observed_at", name="uq_twin_snapshots_twin_observed"),
)
"""One row per pushed snapshot: twin, when observed, when received and from whom, the twin.v1 JSON."""

_S = twin_snapshots.c


@dataclass(frozen=True)
class StoredPush:
    """What storing one pushed snapshot did."""

    stored: bool
    """False when a snapshot of that twin observed at that moment was already stored (a retried push)."""
    newest: bool
    """Whether it is now the twin's newest (an older one arriving late is kept, but nothing acts on it)."""


class SqlPushedSnapshots:
    """Pushed snapshots on SQLite or PostgreSQL; the schema must be migrated (`controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"pushed snapshots: database {dialect!r} is not supported (sqlite, postgresql)")
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def store(self, snapshot: Snapshot, pushed_by: str) -> StoredPush:
        """Keep `snapshot` (once per twin and observation time) and prune the twin's oldest beyond the limit."""
        return await asyncio.to_thread(self.store_sync, snapshot, pushed_by)

    def store_sync(self, snapshot: Snapshot, pushed_by: str) -> StoredPush:
        """`store`, blocking."""
        row = {
            "twin_id": snapshot.twin_id,
            "observed_at": snapshot.observed_at,
            "received_at": datetime.now(UTC),
            "pushed_by": pushed_by,
            "body": snapshot.to_json(),
        }
        with self._writer.begin() as conn:
            insert = self._insert(twin_snapshots).values(**row)
            added = conn.execute(
                insert.on_conflict_do_nothing(index_elements=["twin_id", "observed_at"]).returning(_S.id)
            ).first()
            newest = conn.execute(
                select(_S.observed_at).where(_S.twin_id == snapshot.twin_id).order_by(_S.observed_at.desc()).limit(1)
            ).scalar_one()
            cutoff = conn.execute(
                select(_S.observed_at)
                .where(_S.twin_id == snapshot.twin_id)
                .order_by(_S.observed_at.desc())
                .offset(KEEP_PER_TWIN - 1)
                .limit(1)
            ).scalar_one_or_none()
            if cutoff is not None:
                conn.execute(delete(twin_snapshots).where(_S.twin_id == snapshot.twin_id, _S.observed_at < cutoff))
        return StoredPush(stored=added is not None, newest=newest == snapshot.observed_at)

    async def latest(self, twin_id: str) -> Snapshot | None:
        """The newest snapshot pushed for `twin_id`, None when none was."""
        return await asyncio.to_thread(self.latest_sync, twin_id)

    def latest_sync(self, twin_id: str) -> Snapshot | None:
        """`latest`, blocking."""
        with self._engine.connect() as conn:
            body = conn.execute(
                select(_S.body).where(_S.twin_id == twin_id).order_by(_S.observed_at.desc()).limit(1)
            ).scalar_one_or_none()
        return None if body is None else parse_snapshot(body)


class PushedTwinSource:
    """`TwinSource` over the snapshots pushed to the API: the newest, if fresh enough."""

    def __init__(self, store: SqlPushedSnapshots, twin_id: str, max_age_seconds: float) -> None:
        self.store = store
        self.twin_id = twin_id
        self.max_age_seconds = max_age_seconds

    async def latest(self) -> Snapshot:
        """The newest pushed snapshot; TwinSourceError when none was pushed or it is too old to act on."""
        try:
            snapshot = await self.store.latest(self.twin_id)
        except SnapshotError as exc:  # written by an older release that validated less: never acted on
            raise TwinSourceError(f"twin {self.twin_id!r}: the newest pushed snapshot is invalid now: {exc}") from exc
        if snapshot is None:
            raise TwinSourceError(
                f"twin {self.twin_id!r}: no snapshot pushed yet (POST /api/v1/twins/{self.twin_id}/snapshots)"
            )
        return check_fresh(snapshot, datetime.now(UTC), self.max_age_seconds)
