"""Reading the audit ledger: queries, streaming, verification; and opening a ledger that must already exist.

`LedgerReader` needs only the engine and the log's public key. `LedgerReader.open` is what
`twinops audit verify` uses: it never creates a directory, database, table or key, so a
wrong path is an error rather than an empty log that verifies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from controller.adapters.audit.canonical import format_time, parse_time
from controller.adapters.audit.checkpoint import NoteVerifier
from controller.adapters.audit.models import AuditEventRow, TreeHeadRow
from controller.adapters.audit.signing import verifier_from_settings
from controller.adapters.audit.verify import (
    HeadRecord,
    KeptCheckpoint,
    VerificationReport,
    kept_heads,
    require_coverage,
    verify_log,
)
from controller.core.db import create_engine
from controller.core.errors import AuditError, LedgerIntegrityError, NotFoundError
from controller.core.settings import Settings
from workflows.audit import AuditRecord, EventKind

__all__ = ["LedgerReader", "TreeHead", "row_entry"]

EVENTS = cast(Table, AuditEventRow.__table__)
HEADS = cast(Table, TreeHeadRow.__table__)
# Rows per read when walking the log: verification of 1M events stays in bounded memory.
_CHUNK = 10_000
# How late a head may come on top of the head interval: the timer ticks once per interval (so a
# head can take two), and an event's time is its workflow's, which a retried append lags.
_SIGNING_SLACK = timedelta(minutes=5)
_PLAIN_COLUMNS = ("seq", "event_id", "time", "remediation_id", "workflow_id", "run_id", "actor", "kind", "leaf_hash")


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head."""

    tree_size: int
    root_hash: str
    time: datetime
    checkpoint: str


def head_of(row: Row[Any]) -> TreeHead:
    """A tree_heads row as a TreeHead."""
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


def record_of(row: Row[Any]) -> AuditRecord:
    """An audit_events row as the port's AuditRecord."""
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


def _entries(conn: Connection) -> Iterator[dict[str, Any]]:
    result = conn.execution_options(yield_per=_CHUNK).execute(select(EVENTS).order_by(EVENTS.c.seq))
    for row in result:
        yield row_entry(row)


def _heads(conn: Connection) -> list[HeadRecord]:
    rows = conn.execute(select(HEADS).order_by(HEADS.c.tree_size))
    return [HeadRecord(r.tree_size, r.root_hash, r.time, r.checkpoint) for r in rows]


class LedgerReader:
    """Read-only access to the ledger tables, checked against the log's public key."""

    def __init__(
        self,
        engine: Engine,
        verifier: NoteVerifier,
        *,
        head_every_events: int = 100,
        head_every_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.verifier = verifier
        self.origin = verifier.name
        self.head_every_events = max(1, head_every_events)
        self.head_every = timedelta(seconds=head_every_seconds)
        self._clock = clock

    @classmethod
    def open(cls, settings: Settings, verifier: NoteVerifier | None = None) -> LedgerReader:
        """The existing ledger the settings name, checked with `verifier` (default: the settings' public key).

        Creates nothing: a missing database, ledger tables or key raises AuditError naming it.
        """
        url = make_url(settings.resolved_database_url)
        where = url.render_as_string(hide_password=True)
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
                raise AuditError(f"audit database {url.database or where}: does not exist")
            where = url.database
        verifier = verifier or verifier_from_settings(settings)
        engine = create_engine(settings.resolved_database_url)
        try:
            with engine.connect() as conn:
                missing = [t for t in (EVENTS.name, HEADS.name) if not inspect(conn).has_table(t)]
        except DBAPIError as exc:
            engine.dispose()
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise AuditError(f"audit database {where}: cannot be read ({reason})") from None
        if missing:
            engine.dispose()
            raise AuditError(f"audit database {where}: holds no audit ledger (no table {missing[0]})")
        return cls(
            engine,
            verifier,
            head_every_events=settings.audit_head_every_events,
            head_every_seconds=settings.audit_head_every_seconds,
        )

    def trail_sync(self, remediation_id: str) -> list[AuditRecord]:
        """Every event of one remediation, in log order."""
        stmt = select(EVENTS).where(EVENTS.c.remediation_id == remediation_id).order_by(EVENTS.c.seq)
        with self.engine.connect() as conn:
            return [record_of(row) for row in conn.execute(stmt)]

    def get(self, event_id: str) -> AuditRecord:
        """One event by id; NotFoundError if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(EVENTS).where(EVENTS.c.event_id == event_id)).first()
        if row is None:
            raise NotFoundError(f"audit event {event_id!r}: not in the ledger")
        return record_of(row)

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
        stmt = select(EVENTS).order_by(EVENTS.c.seq)
        if actor is not None:
            stmt = stmt.where(EVENTS.c.actor == actor)
        if kind is not None:
            stmt = stmt.where(EVENTS.c.kind == kind.value)
        if since is not None:
            stmt = stmt.where(EVENTS.c.time >= format_time(since))
        if until is not None:
            stmt = stmt.where(EVENTS.c.time < format_time(until))
        if node is not None:
            # Narrow in SQL on the JSON text, then match exactly in Python (portable across databases).
            needle = json.dumps(node, ensure_ascii=False).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(EVENTS.c.target_nodes.like(f"%{needle}%", escape="\\"))
        found: list[AuditRecord] = []
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                record = record_of(row)
                if node is None or node in record.target_nodes:
                    found.append(record)
                    if limit is not None and len(found) >= limit:
                        break
        return found

    def entry(self, event_id: str) -> dict[str, Any]:
        """One event exactly as stored (the hashed fields plus `leaf_hash`); NotFoundError if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(EVENTS).where(EVENTS.c.event_id == event_id)).first()
        if row is None:
            raise NotFoundError(f"audit event {event_id!r}: not in the ledger")
        return row_entry(row)

    def latest_head(self) -> TreeHead | None:
        """The newest signed head, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(HEADS).order_by(HEADS.c.tree_size.desc()).limit(1)).first()
        return None if row is None else head_of(row)

    def size(self) -> int:
        """Number of events in the ledger."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(EVENTS.c.seq))).scalar()
        return 0 if last is None else int(last) + 1

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first `size` stored leaf hashes, in order."""
        stmt = select(EVENTS.c.seq, EVENTS.c.leaf_hash).where(EVENTS.c.seq < size).order_by(EVENTS.c.seq)
        with self.engine.connect() as conn:
            leaves = [bytes.fromhex(h) for _, h in conn.execute(stmt)]
        if len(leaves) != size:
            raise LedgerIntegrityError(f"seq {len(leaves)}: the ledger has fewer rows than its head of size {size}")
        return leaves

    def iter_entries(self) -> Iterator[dict[str, Any]]:
        """Every entry in seq order, streamed, as verification and export see them."""
        with self.engine.connect() as conn:
            yield from _entries(conn)

    def heads(self) -> list[HeadRecord]:
        """Every stored head, by size."""
        with self.engine.connect() as conn:
            return _heads(conn)

    def verify(self, *, kept_checkpoints: Sequence[str | KeptCheckpoint] = ()) -> VerificationReport:
        """Recompute every leaf and the tree; check every signed head (see `verify_log`), and any
        checkpoints an auditor kept from earlier (they must match the tree at their size).

        Entries no head covers fail unless they are a tail the writers had no chance to sign
        yet: fewer than `head_every_events`, none older than twice the head interval (plus slack).
        Heads and entries are read in one snapshot, so appends during verification cannot
        look like an unsigned tail.
        """
        kept = kept_heads(kept_checkpoints)
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():  # SQLite: one read transaction is one WAL snapshot
                heads = _heads(conn)
                last = conn.execute(select(func.max(EVENTS.c.seq))).scalar()
                size = 0 if last is None else int(last) + 1
                report = verify_log(_entries(conn), [*heads, *kept], self.verifier, self.origin, size_hint=size)
        report.heads -= len(kept)
        require_coverage(
            report,
            max_unsigned=self.head_every_events - 1,
            older_than=self._clock() - 2 * self.head_every - _SIGNING_SLACK,
        )
        return report
