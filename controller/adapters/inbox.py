"""`SqlApprovalInbox`: the `ApprovalInbox` port on SQLAlchemy, plus the reads `twinops queue` and the UI use.

The inbox is a projection: RemediationWorkflow writes its state here through an
activity, so every write may be repeated (activity retries) and, rarely, arrive late
(an attempt that timed out but still committed after its retry). Writes are therefore
one atomic `INSERT ... ON CONFLICT DO UPDATE`, and a closed entry (a terminal status)
is never reopened by an open one: a stale "verifying" cannot resurrect a completed
proposal in the queue.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from controller.core.db import UtcDateTime, sqlite_immediate
from controller.core.errors import AmbiguousIdError, ConfigurationError, NotFoundError
from workflows.ports import InboxEntry, InboxStatus

__all__ = ["CLOSED_STATUSES", "OPEN_STATUSES", "SqlApprovalInbox", "approval_inbox", "entry_of", "metadata"]

OPEN_STATUSES: frozenset[InboxStatus] = frozenset(
    {InboxStatus.PENDING, InboxStatus.ESCALATED, InboxStatus.EXECUTING, InboxStatus.VERIFYING}
)
"""Statuses that still need a human or are still running; the queue's default view."""
CLOSED_STATUSES: frozenset[InboxStatus] = frozenset(InboxStatus) - OPEN_STATUSES
"""Terminal statuses: a closed entry is never reopened."""

_AMBIGUOUS_SHOWN = 5


metadata = MetaData()
"""Metadata of the inbox table (the schema itself is created by migration 0002)."""

approval_inbox = Table(
    "approval_inbox",
    metadata,
    Column("proposal_id", String(200), primary_key=True),
    Column("workflow_id", String(400), nullable=False),
    Column("twin_id", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("risk", String(40), nullable=False),
    Column("target", String(200), nullable=False),
    Column("summary", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deadline", UtcDateTime(), nullable=True),
    Column("required_approvals", Integer(), nullable=False, server_default="0"),
    Column("approvals", JSON(), nullable=False),
    Column("reasons", JSON(), nullable=False),
    Column("plan", Text(), nullable=False, server_default=""),
    Column("approver_groups", JSON(), nullable=False, server_default="[]"),
    Column("pending", JSON(), nullable=False, server_default="[]"),
    Column("team", String(100), nullable=True),
    Index("ix_approval_inbox_status", "status", "created_at"),
    Index("ix_approval_inbox_team", "team", "created_at"),
    Index("ix_approval_inbox_target", "target", "created_at"),
    Index("ix_approval_inbox_created", "created_at", "proposal_id"),
)
"""One row per proposal: the approval queue."""

_T = approval_inbox.c
# Written on every upsert; created_at keeps its first value.
_UPDATED = ("workflow_id", "twin_id", "status", "risk", "target", "summary", "updated_at", "deadline",
            "required_approvals", "approvals", "reasons", "plan", "approver_groups", "pending", "team")  # fmt: skip


def entry_of(row: Row[Any]) -> InboxEntry:
    """An approval_inbox row as the port's InboxEntry."""
    return InboxEntry(
        proposal_id=row.proposal_id,
        workflow_id=row.workflow_id,
        twin_id=row.twin_id,
        status=InboxStatus(row.status),
        risk=row.risk,
        target=row.target,
        summary=row.summary,
        created_at=row.created_at,
        deadline=row.deadline,
        required_approvals=row.required_approvals,
        approvals=list(row.approvals),
        reasons=list(row.reasons),
        plan=row.plan,
        approver_groups=list(row.approver_groups),
        pending=list(row.pending),
        team=row.team,
    )


class SqlApprovalInbox:
    """The approval queue on SQLite or PostgreSQL; the schema must be migrated (`controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"approval inbox: database {dialect!r} is not supported (sqlite, postgresql)")
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)

    async def upsert(self, entry: InboxEntry) -> None:
        """Insert or update the entry for `entry.proposal_id`; repeating a write is harmless."""
        await asyncio.to_thread(self.upsert_sync, entry)

    def upsert_sync(self, entry: InboxEntry) -> None:
        """`upsert` for callers that are not on an event loop."""
        values = {
            **entry.model_dump(mode="python"),
            "status": entry.status.value,
            "updated_at": datetime.now(UTC),
        }
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(approval_inbox).values(values)
        closed = [s.value for s in CLOSED_STATUSES]
        # A run is its workflow id *and* its start time (`created_at`): the agent re-proposes the same
        # plan under the same workflow id (the id derives from the plan), so the id alone cannot tell
        # runs apart. Temporal runs one workflow id at a time, so a later start under the same id means
        # the earlier run has ended (even if killed before it could close its entry): it replaces it.
        same_id = _T.workflow_id == stmt.excluded.workflow_id
        same_run = and_(same_id, _T.created_at == stmt.excluded.created_at)
        later_run = and_(same_id, _T.created_at < stmt.excluded.created_at)
        # The same run may move between open statuses and close, but never reopen (a late retry). An
        # earlier run's late write is ignored. Another workflow for the same proposal replaces a closed
        # entry, and only a closed one.
        guard = or_(
            and_(same_run, _T.status.not_in(closed)) if entry.status in OPEN_STATUSES else same_run,
            later_run,
            and_(not_(same_id), _T.status.in_(closed)),
        )
        updates: dict[str, Any] = {name: stmt.excluded[name] for name in _UPDATED}
        updates["created_at"] = case((same_run, _T.created_at), else_=stmt.excluded.created_at)
        stmt = stmt.on_conflict_do_update(index_elements=[_T.proposal_id], set_=updates, where=guard)
        with self._writer.begin() as conn:
            conn.execute(stmt)

    def list(
        self, status: InboxStatus | None = None, include_closed: bool = False, limit: int = 100
    ) -> builtins.list[InboxEntry]:
        """Entries newest first: those with `status`, else the open ones, or all with `include_closed`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = select(approval_inbox).order_by(_T.created_at.desc(), _T.proposal_id.desc()).limit(limit)
        if status is not None:
            query = query.where(_T.status == InboxStatus(status).value)
        elif not include_closed:
            query = query.where(_T.status.in_(sorted(s.value for s in OPEN_STATUSES)))
        with self._engine.connect() as conn:
            return [entry_of(row) for row in conn.execute(query)]

    async def open_targets(self, twin_id: str) -> dict[str, str]:
        """Target node -> proposal id of every open remediation of the twin (the `OpenRemediations` port)."""
        return await asyncio.to_thread(self.open_targets_sync, twin_id)

    def open_targets_sync(self, twin_id: str) -> dict[str, str]:
        """`open_targets` for callers that are not on an event loop."""
        query = (
            select(_T.target, _T.proposal_id)
            .where(_T.twin_id == twin_id, _T.status.in_(sorted(s.value for s in OPEN_STATUSES)))
            .order_by(_T.created_at, _T.proposal_id)
        )
        with self._engine.connect() as conn:
            return {target: proposal for target, proposal in conn.execute(query)}

    def get(self, proposal_id: str) -> InboxEntry:
        """The entry for `proposal_id`, or for the one proposal whose id starts with it.

        Raises `NotFoundError` when nothing matches and `AmbiguousIdError` (a
        `NotFoundError`) when the prefix matches several proposals.
        """
        wanted = proposal_id.strip()
        with self._engine.connect() as conn:
            if not wanted:
                raise NotFoundError(f"unknown proposal {proposal_id!r}")
            row = conn.execute(select(approval_inbox).where(_T.proposal_id == wanted)).one_or_none()
            if row is not None:
                return entry_of(row)
            # substr, not LIKE: exact and case-sensitive on both databases, no wildcard escaping.
            matches = conn.execute(
                select(approval_inbox)
                .where(func.substr(_T.proposal_id, 1, len(wanted)) == wanted)
                .order_by(_T.created_at.desc(), _T.proposal_id.desc())
                .limit(_AMBIGUOUS_SHOWN + 1)
            ).all()
            if not matches:
                raise NotFoundError(f"unknown proposal {proposal_id!r}")
            if len(matches) > 1:
                shown = ", ".join(m.proposal_id for m in matches[:_AMBIGUOUS_SHOWN])
                more = " and more" if len(matches) > _AMBIGUOUS_SHOWN else ""
                raise AmbiguousIdError(
                    f"proposal prefix {proposal_id!r} is ambiguous: it matches {shown}{more}; type more of the id"
                )
            return entry_of(matches[0])

    async def aget(self, proposal_id: str) -> InboxEntry:
        """`get` off the event loop (for the API)."""
        return await asyncio.to_thread(self.get, proposal_id)

    async def alist(
        self, status: InboxStatus | None = None, include_closed: bool = False, limit: int = 100
    ) -> builtins.list[InboxEntry]:
        """`list` off the event loop (for the API)."""
        return await asyncio.to_thread(self.list, status, include_closed, limit)
