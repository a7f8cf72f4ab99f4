"""`SqlPreapprovalStore`: pre-approvals of playbook runs on SQLAlchemy (table `playbook_preapprovals`, migration 0010).

One row per pre-approval: the grant (its signed approvals) as the model's JSON, the columns a claim
selects on, who created it, and which run used it. `claim` is the `PreapprovalStore` port: one
transaction that returns the grant a run already holds (a retried activity), or takes the first
unused grant covering the run with a conditional UPDATE (`used_by_run IS NULL`), so two runs can
never hold the same grant. Approvals are added under the writer's lock (SQLite IMMEDIATE,
PostgreSQL `FOR UPDATE`), so two approvers adding at once both count.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Connection, Engine, Index, Integer, MetaData, String, Table, Text, select, update

from controller.core.db import UtcDateTime, sqlite_immediate
from controller.core.errors import ConfigurationError, ConflictError, NotFoundError
from workflows.contracts import PreapprovalGrant, SignedDecision
from workflows.decisions import PREAPPROVAL_EARLY
from workflows.playbook_contracts import PreapprovalClaim

__all__ = ["PreapprovalRecord", "SqlPreapprovalStore", "metadata", "playbook_preapprovals"]

metadata = MetaData()
"""Metadata of the pre-approvals table (the schema itself is created by migration 0010)."""

playbook_preapprovals = Table(
    "playbook_preapprovals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("playbook", String(200), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("playbook_digest", String(64), nullable=False),
    Column("run_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("grant", Text(), nullable=False),
    Column("used_by_run", String(400), nullable=True),
    Column("used_at", UtcDateTime(), nullable=True),
    Index("ix_playbook_preapprovals_playbook", "playbook", "run_at"),
)

_P = playbook_preapprovals.c


class PreapprovalRecord(BaseModel):
    """A stored pre-approval: the grant, who created it, and which run used it (if one did)."""

    model_config = ConfigDict(frozen=True)

    grant: PreapprovalGrant
    created_by: str
    created_at: datetime
    used_by_run: str | None = None
    used_at: datetime | None = None

    def status(self, now: datetime) -> str:
        """used, expired, or open."""
        if self.used_by_run is not None:
            return "used"
        return "expired" if now >= self.grant.expires_at else "open"


def _record(row: object) -> PreapprovalRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return PreapprovalRecord(
        grant=PreapprovalGrant.model_validate_json(m["grant"]),
        created_by=m["created_by"],
        created_at=m["created_at"],
        used_by_run=m["used_by_run"],
        used_at=m["used_at"],
    )


class SqlPreapprovalStore:
    """Pre-approvals on SQLite or PostgreSQL; the schema must be migrated (`controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"pre-approvals: database {dialect!r} is not supported (sqlite, postgresql)")
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)
        self._lock_rows = dialect == "postgresql"

    # ---- the port -------------------------------------------------------------------------

    async def claim(
        self, playbook: str, version: int, playbook_digest: str, run_id: str, started_at: datetime
    ) -> PreapprovalClaim:
        """See `workflows.playbook_contracts.PreapprovalStore.claim`."""
        return await asyncio.to_thread(self.claim_sync, playbook, version, playbook_digest, run_id, started_at)

    def claim_sync(
        self, playbook: str, version: int, playbook_digest: str, run_id: str, started_at: datetime
    ) -> PreapprovalClaim:
        """`claim` for callers that are not on an event loop."""
        with self._writer.begin() as conn:
            held = conn.execute(select(playbook_preapprovals).where(_P.used_by_run == run_id)).first()
            if held is not None:
                grant = _record(held).grant
                return PreapprovalClaim(grant=grant, note=f"pre-approval {grant.id} covers this run")
            covering = [
                _record(r)
                for r in conn.execute(
                    select(playbook_preapprovals)
                    .where(
                        _P.playbook == playbook, _P.expires_at > started_at, _P.run_at <= started_at + PREAPPROVAL_EARLY
                    )
                    .order_by(_P.run_at, _P.id)
                )
            ]
            notes: list[str] = []
            for record in covering:
                grant = record.grant
                if record.used_by_run is not None:
                    notes.append(f"pre-approval {grant.id} was used by run {record.used_by_run}")
                    continue
                if (grant.version, grant.playbook_digest) != (version, playbook_digest):
                    notes.append(
                        f"pre-approval {grant.id} is for {playbook} v{grant.version} as it was then; "
                        f"this run is v{version}" + (" with other content" if grant.version == version else "")
                    )
                    continue
                if not grant.approvals:
                    notes.append(f"pre-approval {grant.id} has no approvals")
                    continue
                taken = conn.execute(
                    update(playbook_preapprovals)
                    .where(_P.id == grant.id, _P.used_by_run.is_(None))
                    .values(used_by_run=run_id, used_at=datetime.now(UTC))
                )
                if taken.rowcount == 1:
                    return PreapprovalClaim(grant=grant, note=f"pre-approval {grant.id} covers this run")
            note = "; ".join(notes) if notes else f"no pre-approval covers this run of {playbook}"
            return PreapprovalClaim(note=note)

    # ---- creating and approving -------------------------------------------------------------

    def create_sync(self, grant: PreapprovalGrant, created_by: str) -> PreapprovalRecord:
        """Store a new grant (its approvals, if any, with it)."""
        now = datetime.now(UTC)
        with self._writer.begin() as conn:
            conn.execute(
                playbook_preapprovals.insert().values(
                    id=grant.id,
                    playbook=grant.playbook,
                    version=grant.version,
                    playbook_digest=grant.playbook_digest,
                    run_at=grant.run_at,
                    expires_at=grant.expires_at,
                    created_by=created_by,
                    created_at=now,
                    grant=grant.model_dump_json(),
                )
            )
        return PreapprovalRecord(grant=grant, created_by=created_by, created_at=now)

    def add_approval_sync(self, preapproval_id: str, signed: SignedDecision, now: datetime) -> PreapprovalRecord:
        """Add one signed approval; ConflictError when the grant is used, expired or already has this approver."""
        with self._writer.begin() as conn:
            record = self._locked(conn, preapproval_id)
            grant = record.grant
            if record.used_by_run is not None:
                raise ConflictError(f"pre-approval {grant.id} was used by run {record.used_by_run}: it is closed")
            if now >= grant.expires_at:
                raise ConflictError(f"pre-approval {grant.id} expired at {grant.expires_at.isoformat()}")
            if any(a.principal.id == signed.principal.id for a in grant.approvals):
                raise ConflictError(f"{signed.principal.id!r} has already pre-approved {grant.id}")
            grant = grant.model_copy(update={"approvals": [*grant.approvals, signed]})
            conn.execute(update(playbook_preapprovals).where(_P.id == grant.id).values(grant=grant.model_dump_json()))
        return record.model_copy(update={"grant": grant})

    def _locked(self, conn: Connection, preapproval_id: str) -> PreapprovalRecord:
        query = select(playbook_preapprovals).where(_P.id == preapproval_id)
        row = conn.execute(query.with_for_update() if self._lock_rows else query).first()
        if row is None:
            raise NotFoundError(f"unknown pre-approval {preapproval_id!r}")
        return _record(row)

    # ---- reading ------------------------------------------------------------------------------

    def get_sync(self, preapproval_id: str) -> PreapprovalRecord:
        """One pre-approval; NotFoundError naming it when there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(select(playbook_preapprovals).where(_P.id == preapproval_id)).first()
        if row is None:
            raise NotFoundError(f"unknown pre-approval {preapproval_id!r}")
        return _record(row)

    def open_for_sync(
        self, playbook: str, version: int, playbook_digest: str, run_at: datetime
    ) -> PreapprovalRecord | None:
        """The unused pre-approval of exactly this playbook content for the run at `run_at`, if one is open."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(playbook_preapprovals)
                .where(
                    _P.playbook == playbook,
                    _P.version == version,
                    _P.playbook_digest == playbook_digest,
                    _P.run_at == run_at,
                    _P.used_by_run.is_(None),
                )
                .order_by(_P.created_at, _P.id)
            ).first()
        return _record(row) if row is not None else None

    def list_sync(self, playbook: str | None = None, limit: int = 100) -> builtins.list[PreapprovalRecord]:
        """Pre-approvals, the latest run first (of `playbook`, when given)."""
        query = select(playbook_preapprovals).order_by(_P.run_at.desc(), _P.id).limit(limit)
        if playbook is not None:
            query = query.where(_P.playbook == playbook)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]
