"""`SqlAuditLedger`: the `AuditLedger` port on SQLAlchemy (SQLite by default, PostgreSQL in production).

Appends are serialized so sequence numbers have no gaps and the tree never forks:
PostgreSQL takes a transaction-scoped advisory lock, SQLite a `BEGIN IMMEDIATE`
write lock; within one process a thread lock spares the database the contention.
The tree's right edge (a `Frontier`, O(log n) hashes) is cached in memory and
caught up from the rows other processes appended, so an append hashes O(1)
nodes amortized and a signed head costs O(log n), never a full recomputation.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Engine, Row, Table, func, insert, select, text

from controller.audit.canonical import canonical_json, entry_bytes, entry_fields, format_time, parse_time
from controller.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, load_or_create_key, parse_checkpoint
from controller.audit.merkle import Frontier, leaf_hash
from controller.audit.models import AuditEventRow, TreeHeadRow
from controller.audit.verify import HeadRecord, VerificationReport, require_coverage, verify_log
from controller.db import create_engine, migrate, sqlite_immediate
from controller.errors import LedgerConflictError, LedgerIntegrityError, NotFoundError
from controller.settings import Settings
from workflows.audit import AuditEventConflict, AuditEventInput, AuditRecord, EventKind

__all__ = ["EventConflictError", "SqlAuditLedger", "TreeHead"]

_log = structlog.get_logger("twinops.audit")
_EVENTS = cast(Table, AuditEventRow.__table__)
_HEADS = cast(Table, TreeHeadRow.__table__)
_APPEND_LOCK = 0x7477696E61756474  # "twinaudt": the advisory lock every appender takes
_CHUNK = 10_000
# How late a head may come on top of the head interval: the timer ticks once per interval (so a
# head can take two), and an event's time is its workflow's, which a retried append lags.
_SIGNING_SLACK = timedelta(minutes=5)
_PLAIN_COLUMNS = ("seq", "event_id", "time", "remediation_id", "workflow_id", "run_id", "actor", "kind", "leaf_hash")


class EventConflictError(LedgerConflictError, AuditEventConflict):
    """An event id appended again with different content: a LedgerConflictError the workflows layer can catch."""


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head."""

    tree_size: int
    root_hash: str
    time: datetime
    checkpoint: str


def _parsed(text: str) -> Checkpoint:
    try:
        return parse_checkpoint(text)
    except LedgerIntegrityError:
        # Unparseable: hand it on with an impossible size so verification reports it as a bad head.
        return Checkpoint(origin="", size=-1, root=b"", time=datetime.min.replace(tzinfo=UTC), body="", text=text)


def _head(row: Row[Any]) -> TreeHead:
    return TreeHead(row.tree_size, row.root_hash, parse_time(row.time), row.checkpoint)


def row_entry(row: Row[Any]) -> dict[str, Any]:
    """A table row as the entry dict verification and export use; unreadable JSON stays text (and fails the hash)."""
    entry = {name: getattr(row, name) for name in _PLAIN_COLUMNS}
    for name in ("target_nodes", "payload"):
        raw = getattr(row, name)
        try:
            entry[name] = json.loads(raw)
        except (TypeError, ValueError):
            entry[name] = raw
    return entry


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        event_id=row.event_id,
        time=parse_time(row.time),
        remediation_id=row.remediation_id,
        workflow_id=row.workflow_id,
        run_id=row.run_id,
        actor=row.actor,
        kind=EventKind(row.kind),
        target_nodes=tuple(json.loads(row.target_nodes)),
        payload=json.loads(row.payload),
        leaf_hash=row.leaf_hash,
    )


class SqlAuditLedger:
    """The append-only, verifiable audit ledger over any SQLAlchemy engine."""

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        head_every_events: int = 100,
        head_every_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.origin = signer.name
        self.head_every_events = max(1, head_every_events)
        self.head_every = timedelta(seconds=head_every_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._frontier = Frontier()
        self._seen_head: tuple[int, datetime] | None = None  # (size, time) of the newest head we know of

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate_schema: bool = True) -> SqlAuditLedger:
        """The ledger the settings describe: engine, schema at head, signing key (created on first start)."""
        engine = create_engine(settings.resolved_database_url)
        if migrate_schema:
            migrate(engine)
        signer = NoteSigner(settings.audit_origin, load_or_create_key(settings.resolved_signing_key))
        return cls(
            engine,
            signer,
            head_every_events=settings.audit_head_every_events,
            head_every_seconds=settings.audit_head_every_seconds,
        )

    @property
    def verifier(self) -> NoteVerifier:
        """The verifier for this ledger's heads (public key only)."""
        return self.signer.verifier()

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
        with self._lock, self.engine.connect() as conn:
            conn.execution_options(**sqlite_immediate)
            with conn.begin():
                self._serialize(conn)
                existing = conn.execute(select(_EVENTS).where(_EVENTS.c.event_id == event.event_id)).first()
                if existing is not None:
                    return self._same_or_conflict(existing, event)
                frontier = self._caught_up(conn)
                fields = entry_fields(event, frontier.size)
                leaf = leaf_hash(entry_bytes(fields))
                conn.execute(
                    insert(_EVENTS).values(
                        **{k: v for k, v in fields.items() if k not in ("target_nodes", "payload")},
                        target_nodes=canonical_json(fields["target_nodes"]).decode(),
                        payload=canonical_json(fields["payload"]).decode(),
                        leaf_hash=leaf.hex(),
                    )
                )
                frontier.append(leaf)
                head = self._head_if_due(conn, frontier, force=False)
            self._committed(frontier, head)
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

    def _serialize(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
        # SQLite: BEGIN IMMEDIATE already holds the write lock. Other databases rely on the
        # seq primary key: a racing insert fails instead of forking the tree.

    def _same_or_conflict(self, row: Row[Any], event: AuditEventInput) -> AuditRecord:
        stored = row_entry(row)
        wanted = entry_fields(event, row.seq)
        if entry_bytes(stored) == entry_bytes(wanted):
            return _record(row)
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
        stmt = select(_EVENTS.c.seq, _EVENTS.c.leaf_hash).order_by(_EVENTS.c.seq)
        rows = conn.execute(stmt.where(_EVENTS.c.seq >= start)).all()
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
        latest = conn.execute(select(_HEADS).order_by(_HEADS.c.tree_size.desc()).limit(1)).first()
        if latest is not None:
            self._seen_head = (latest.tree_size, parse_time(latest.time))
            if latest.tree_size == frontier.size:
                return _head(latest) if force else None
            if not force and not self._due(self._seen_head, frontier.size, now):
                return None
        root = frontier.root()
        checkpoint = self.signer.sign_checkpoint(self.origin, frontier.size, root, now)
        conn.execute(
            insert(_HEADS).values(
                tree_size=frontier.size, root_hash=root.hex(), time=format_time(now), checkpoint=checkpoint
            )
        )
        _log.debug("audit.head_signed", tree_size=frontier.size, root_hash=root.hex())
        return TreeHead(frontier.size, root.hex(), parse_time(format_time(now)), checkpoint)

    def _due(self, seen: tuple[int, datetime], size: int, now: datetime) -> bool:
        return size - seen[0] >= self.head_every_events or (size > seen[0] and now - seen[1] >= self.head_every)

    def _committed(self, frontier: Frontier, head: TreeHead | None) -> None:
        # Only committed state may become the cache; after a rollback the old cache stays.
        self._frontier = frontier
        if head is not None:
            self._seen_head = (head.tree_size, head.time)

    # -- reading ----------------------------------------------------------------------------------

    def trail_sync(self, remediation_id: str) -> list[AuditRecord]:
        """Every event of one remediation, in log order."""
        stmt = select(_EVENTS).where(_EVENTS.c.remediation_id == remediation_id).order_by(_EVENTS.c.seq)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def get(self, event_id: str) -> AuditRecord:
        """One event by id; NotFoundError if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_EVENTS).where(_EVENTS.c.event_id == event_id)).first()
        if row is None:
            raise NotFoundError(f"audit event {event_id!r}: not in the ledger")
        return _record(row)

    def query(
        self,
        *,
        node: str | None = None,
        actor: str | None = None,
        kind: EventKind | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Events matching every given filter, in log order (`until` is exclusive)."""
        stmt = select(_EVENTS).order_by(_EVENTS.c.seq)
        if actor is not None:
            stmt = stmt.where(_EVENTS.c.actor == actor)
        if kind is not None:
            stmt = stmt.where(_EVENTS.c.kind == kind.value)
        if since is not None:
            stmt = stmt.where(_EVENTS.c.time >= format_time(since))
        if until is not None:
            stmt = stmt.where(_EVENTS.c.time < format_time(until))
        if node is not None:
            # Narrow in SQL on the JSON text, then match exactly in Python (portable across databases).
            needle = json.dumps(node, ensure_ascii=False).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(_EVENTS.c.target_nodes.like(f"%{needle}%", escape="\\"))
        found: list[AuditRecord] = []
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                record = _record(row)
                if node is None or node in record.target_nodes:
                    found.append(record)
                    if limit is not None and len(found) >= limit:
                        break
        return found

    def entry(self, event_id: str) -> dict[str, Any]:
        """One event exactly as stored (the hashed fields plus `leaf_hash`); NotFoundError if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_EVENTS).where(_EVENTS.c.event_id == event_id)).first()
        if row is None:
            raise NotFoundError(f"audit event {event_id!r}: not in the ledger")
        return row_entry(row)

    def latest_head(self) -> TreeHead | None:
        """The newest signed head, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_HEADS).order_by(_HEADS.c.tree_size.desc()).limit(1)).first()
        return None if row is None else _head(row)

    def size(self) -> int:
        """Number of events in the ledger."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(_EVENTS.c.seq))).scalar()
        return 0 if last is None else int(last) + 1

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first `size` stored leaf hashes, in order."""
        stmt = select(_EVENTS.c.seq, _EVENTS.c.leaf_hash).where(_EVENTS.c.seq < size).order_by(_EVENTS.c.seq)
        with self.engine.connect() as conn:
            leaves = [bytes.fromhex(h) for _, h in conn.execute(stmt)]
        if len(leaves) != size:
            raise LedgerIntegrityError(f"seq {len(leaves)}: the ledger has fewer rows than its head of size {size}")
        return leaves

    def iter_entries(self) -> Iterator[dict[str, Any]]:
        """Every entry in seq order, streamed, as verification and export see them."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=_CHUNK).execute(select(_EVENTS).order_by(_EVENTS.c.seq))
            for row in result:
                yield row_entry(row)

    def heads(self) -> list[HeadRecord]:
        """Every stored head, by size."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_HEADS).order_by(_HEADS.c.tree_size))
            return [HeadRecord(r.tree_size, r.root_hash, r.time, r.checkpoint) for r in rows]

    def verify(self, *, kept_checkpoints: Sequence[str] = ()) -> VerificationReport:
        """Recompute every leaf and the tree; check every signed head (see `verify_log`), and any
        checkpoints an auditor kept from earlier (they must match the tree at their size).

        Entries no head covers fail unless they are a tail the writers had no chance to sign
        yet: fewer than `head_every_events`, none older than twice the head interval (plus slack).
        """
        kept = [HeadRecord(c.size, c.root.hex(), format_time(c.time), c.text) for c in map(_parsed, kept_checkpoints)]
        report = verify_log(
            self.iter_entries(), [*self.heads(), *kept], self.verifier, self.origin, size_hint=self.size()
        )
        report.heads -= len(kept)
        require_coverage(
            report,
            max_unsigned=self.head_every_events - 1,
            older_than=self._clock() - 2 * self.head_every - _SIGNING_SLACK,
        )
        return report
