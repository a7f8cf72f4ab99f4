"""`SqlAuditLedger`: the `AuditLedger` port on SQLAlchemy (SQLite by default, PostgreSQL in production).

Appends are serialized so sequence numbers have no gaps and the tree never forks:
PostgreSQL takes a transaction-scoped advisory lock, SQLite a `BEGIN IMMEDIATE`
write lock; within one process a thread lock spares the database the contention.
The tree's right edge (a `Frontier`, O(log n) hashes) is cached in memory and
caught up from the rows other processes appended, so an append hashes O(1)
nodes amortized and a signed head costs O(log n), never a full recomputation.
Reading and verification are inherited from `LedgerReader`; each head signed is
handed, once committed, to the ledger's witnesses (`controller.adapters.audit.witness`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine, Row, insert, select, text

from controller.adapters.audit.canonical import canonical_json, entry_bytes, entry_fields, format_time, parse_time
from controller.adapters.audit.checkpoint import NoteSigner
from controller.adapters.audit.merkle import Frontier, leaf_hash
from controller.adapters.audit.reader import EVENTS, HEADS, LedgerReader, TreeHead, head_of, record_of, row_entry
from controller.adapters.audit.signing import signer_from_settings
from controller.adapters.audit.witness import CheckpointWitness, WitnessDirectory, WitnessFanout
from controller.core.db import create_engine, migrate, sqlite_immediate
from controller.core.errors import LedgerConflictError, LedgerIntegrityError
from controller.core.settings import Settings
from workflows.audit import AuditEventConflict, AuditEventInput, AuditRecord

__all__ = ["AppendObserver", "EventConflictError", "SqlAuditLedger", "TreeHead", "row_entry"]

_log = structlog.get_logger("twinops.audit")
_APPEND_LOCK = 0x7477696E61756474  # "twinaudt": the advisory lock every appender takes


class EventConflictError(LedgerConflictError, AuditEventConflict):
    """An event id appended again with different content: a LedgerConflictError the workflows layer can catch."""


class AppendObserver(Protocol):
    """Told of every append that returned (e.g. `controller.adapters.metrics.TwinopsMetrics`)."""

    def appended(self, event: AuditEventInput, seconds: float, *, new: bool) -> None:
        """`event` was appended in `seconds`; `new` is False when its event id was already stored."""


class SqlAuditLedger(LedgerReader):
    """The append-only, verifiable audit ledger over any SQLAlchemy engine.

    Every head it signs is handed, once committed, to its witnesses (see `controller.adapters.audit.witness`).
    """

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        head_every_events: int = 100,
        head_every_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        witnesses: Sequence[CheckpointWitness] = (),
    ) -> None:
        super().__init__(
            engine,
            signer.verifier(),
            head_every_events=head_every_events,
            head_every_seconds=head_every_seconds,
            clock=clock,
        )
        self.signer = signer
        self.witnesses = WitnessFanout(witnesses)
        self._lock = threading.Lock()
        self._frontier = Frontier()
        self._seen_head: tuple[int, datetime] | None = None  # (size, time) of the newest head we know of
        self._observers: tuple[AppendObserver, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate_schema: bool = True) -> SqlAuditLedger:
        """The ledger the settings describe: engine, schema at head, signer (a key file is created on first
        start in embedded mode only), and the witness directory if one is set."""
        signer = signer_from_settings(settings)
        engine = create_engine(settings.resolved_database_url)
        if migrate_schema:
            migrate(engine)
        witnesses = [WitnessDirectory(settings.audit_witness_dir)] if settings.audit_witness_dir else []
        return cls(
            engine,
            signer,
            head_every_events=settings.audit_head_every_events,
            head_every_seconds=settings.audit_head_every_seconds,
            witnesses=witnesses,
        )

    @contextmanager
    def witnessed_by(self, witness: CheckpointWitness) -> Iterator[None]:
        """Publish heads to `witness` too while the block runs (e.g. the worker's notifier)."""
        with self._lock:
            self.witnesses.add(witness)
        try:
            yield
        finally:
            with self._lock:
                self.witnesses.remove(witness)

    @contextmanager
    def observed_by(self, observer: AppendObserver) -> Iterator[None]:
        """Tell `observer` of every append while the block runs (the worker's metrics)."""
        self._observers = (*self._observers, observer)
        try:
            yield
        finally:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def _observe(self, event: AuditEventInput, started: float, *, new: bool) -> None:
        seconds = time.monotonic() - started
        for observer in self._observers:
            try:
                observer.appended(event, seconds, new=new)
            except Exception as exc:  # the event is committed; an observer's failure must not fail the append
                _log.warning("audit.observer_failed", error=str(exc))

    # -- the port ---------------------------------------------------------------------------------

    async def append(self, event: AuditEventInput) -> AuditRecord:
        """Record `event` (idempotent by event id); see `append_sync`."""
        return await asyncio.to_thread(self.append_sync, event)

    async def trail(self, remediation_id: str) -> list[AuditRecord]:
        """Every event of one remediation, in log order."""
        return await asyncio.to_thread(self.trail_sync, remediation_id)

    # -- writing ----------------------------------------------------------------------------------

    def append_sync(self, event: AuditEventInput) -> AuditRecord:
        """Append one event; the same id with the same content returns the stored record,
        with different content raises LedgerConflictError."""
        started = time.monotonic()
        with self._lock, self.engine.connect() as conn:
            conn.execution_options(**sqlite_immediate)
            with conn.begin():
                self._serialize(conn)
                existing = conn.execute(select(EVENTS).where(EVENTS.c.event_id == event.event_id)).first()
                if existing is not None:
                    stored = self._same_or_conflict(existing, event)
                    self._observe(event, started, new=False)
                    return stored
                frontier = self._caught_up(conn)
                fields = entry_fields(event, frontier.size)
                leaf = leaf_hash(entry_bytes(fields))
                conn.execute(
                    insert(EVENTS).values(
                        **{k: v for k, v in fields.items() if k not in ("target_nodes", "payload")},
                        target_nodes=canonical_json(fields["target_nodes"]).decode(),
                        payload=canonical_json(fields["payload"]).decode(),
                        leaf_hash=leaf.hex(),
                    )
                )
                frontier.append(leaf)
                head = self._head_if_due(conn, frontier, force=False)
            self._committed(frontier, head)
        self._observe(event, started, new=True)
        return AuditRecord(**event.model_dump(), seq=fields["seq"], leaf_hash=leaf.hex())

    def publish_head(self) -> TreeHead:
        """Sign a head for the current size now (or return the latest if it already covers everything)."""
        with self._lock, self.engine.connect() as conn:
            conn.execution_options(**sqlite_immediate)
            with conn.begin():
                self._serialize(conn)
                frontier = self._caught_up(conn)
                head = self._head_if_due(conn, frontier, force=True)
            self._committed(frontier, head)
        assert head is not None  # force=True always yields a head
        return head

    def publish_head_if_due(self) -> TreeHead | None:
        """Sign a head if N events or T seconds passed since the last one; for a periodic timer."""
        with self._lock, self.engine.connect() as conn:
            conn.execution_options(**sqlite_immediate)
            with conn.begin():
                self._serialize(conn)
                frontier = self._caught_up(conn)
                head = self._head_if_due(conn, frontier, force=False)
            self._committed(frontier, head)
            if head is None:
                self.witnesses.publish()  # retry what a witness missed, once per tick rather than per append
        return head

    async def publish_heads_periodically(self) -> None:
        """Run forever (as a task of the worker): sign a head whenever T seconds passed with new events."""
        interval = max(self.head_every.total_seconds(), 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.publish_head_if_due)
            except Exception as exc:  # the timer must outlive a database hiccup; appends still sign heads
                _log.warning("audit.head_timer_failed", error=str(exc))

    async def publish_final_head(self) -> None:
        """Sign a head over everything appended so far (a graceful stop); log, never raise, if that fails."""
        try:
            await asyncio.to_thread(self.publish_head)
        except Exception as exc:  # stopping must not fail on it; the next start's timer signs the tail
            _log.warning("audit.final_head_failed", error=str(exc))

    def _serialize(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
        # SQLite: BEGIN IMMEDIATE already holds the write lock. Other databases rely on the
        # seq primary key: a racing insert fails instead of forking the tree.

    def _same_or_conflict(self, row: Row[Any], event: AuditEventInput) -> AuditRecord:
        stored = row_entry(row)
        wanted = entry_fields(event, row.seq)
        if entry_bytes(stored) == entry_bytes(wanted):
            return record_of(row)
        differing = sorted(k for k in wanted if wanted[k] != stored.get(k))
        raise EventConflictError(
            f"event {event.event_id!r} is already recorded at seq {row.seq} with different content "
            f"(differs in: {', '.join(differing)})"
        )

    def _caught_up(self, conn: Connection) -> Frontier:
        """The cached frontier advanced over rows appended since (by us or other processes).

        One query: it re-reads our newest cached row too, so a table that shrank or was
        rewritten under the cache (a restore) is noticed and the frontier rebuilt.
        """
        frontier = self._frontier.copy()
        start = max(frontier.size - 1, 0)
        stmt = select(EVENTS.c.seq, EVENTS.c.leaf_hash).order_by(EVENTS.c.seq)
        rows = conn.execute(stmt.where(EVENTS.c.seq >= start)).all()
        if frontier.size:
            if rows and rows[0].seq == start and bytes.fromhex(rows[0].leaf_hash) == frontier.last:
                rows = rows[1:]
            else:
                frontier = Frontier()
                rows = conn.execute(stmt).all()
        for seq, hex_hash in rows:
            if seq != frontier.size:
                raise LedgerIntegrityError(f"seq {frontier.size}: missing from the ledger (next row is seq {seq})")
            frontier.append(bytes.fromhex(hex_hash))
        return frontier

    def _head_if_due(self, conn: Connection, frontier: Frontier, *, force: bool) -> TreeHead | None:
        now = self._clock()
        seen = self._seen_head
        if not force and seen is not None and not self._due(seen, frontier.size, now):
            return None  # the common case costs no query; other writers' heads only make ours earlier
        latest = conn.execute(select(HEADS).order_by(HEADS.c.tree_size.desc()).limit(1)).first()
        if latest is not None:
            self._seen_head = (latest.tree_size, parse_time(latest.time))
            if latest.tree_size == frontier.size:
                return head_of(latest) if force else None
            if not force and not self._due(self._seen_head, frontier.size, now):
                return None
        root = frontier.root()
        checkpoint = self.signer.sign_checkpoint(self.origin, frontier.size, root, now)
        conn.execute(
            insert(HEADS).values(
                tree_size=frontier.size, root_hash=root.hex(), time=format_time(now), checkpoint=checkpoint
            )
        )
        _log.debug("audit.head_signed", tree_size=frontier.size, root_hash=root.hex())
        return TreeHead(frontier.size, root.hex(), parse_time(format_time(now)), checkpoint)

    def _due(self, seen: tuple[int, datetime], size: int, now: datetime) -> bool:
        return size - seen[0] >= self.head_every_events or (size > seen[0] and now - seen[1] >= self.head_every)

    def _committed(self, frontier: Frontier, head: TreeHead | None) -> None:
        # Only committed state may become the cache; after a rollback the old cache stays.
        signed = head is not None and (self._seen_head is None or head.tree_size > self._seen_head[0])
        self._frontier = frontier
        if head is not None:
            self._seen_head = (head.tree_size, head.time)
        if signed and head is not None:
            # Under the append lock, so witnesses see heads in order; a head we only re-read is not re-sent.
            self.witnesses.publish(head.checkpoint)
