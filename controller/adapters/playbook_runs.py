"""`SqlPlaybookRunStore`: the `PlaybookRunStore` port on SQLAlchemy (table `playbook_runs`, migration 0009).

One row per playbook run: its report as the model's JSON, plus the columns the reads filter and
sort on (playbook, version, status, trigger, started_at, ended_at). A save is one
`INSERT ... ON CONFLICT (run_id) DO UPDATE`, so the activity that saves a report may be retried
and the row ends as the last save left it. Reads are newest first by `ended_at` (run id breaks
ties, so the order is stable), served by the (playbook, ended_at) and (ended_at, run_id) indexes.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from sqlalchemy import Column, Engine, Index, Integer, MetaData, Select, String, Table, Text, select
from sqlalchemy.dialects import postgresql, sqlite

from controller.core.db import UtcDateTime, sqlite_immediate
from controller.core.errors import ConfigurationError, NotFoundError
from workflows.playbook_contracts import PlaybookRunReport

__all__ = ["MAX_LIST", "SqlPlaybookRunStore", "metadata", "playbook_runs"]

MAX_LIST = 1000
"""The most reports one `list` returns."""

metadata = MetaData()
"""Metadata of the playbook runs table (the schema itself is created by migration 0009)."""

playbook_runs = Table(
    "playbook_runs",
    metadata,
    Column("run_id", String(400), primary_key=True),
    Column("playbook", String(200), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("status", String(40), nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=False),
    Column("report", Text(), nullable=False),
    Index("ix_playbook_runs_playbook", "playbook", "ended_at"),
    Index("ix_playbook_runs_ended", "ended_at", "run_id"),
)
"""One row per playbook run: the report's JSON and the columns reads filter and sort on."""

_R = playbook_runs.c
_UPDATED = ("playbook", "version", "status", "trigger", "started_at", "ended_at", "report")


def _newest(playbook: str | None) -> Select[str]:
    query = select(_R.report).order_by(_R.ended_at.desc(), _R.run_id.desc())
    return query if playbook is None else query.where(_R.playbook == playbook)


class SqlPlaybookRunStore:
    """Playbook run reports on SQLite or PostgreSQL; the schema must be migrated (`controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"playbook runs: database {dialect!r} is not supported (sqlite, postgresql)")
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # ---- the port (async) -----------------------------------------------------------------

    async def save(self, report: PlaybookRunReport) -> None:
        """Insert or replace the report of `report.run_id` (a retried save is harmless)."""
        await asyncio.to_thread(self.save_sync, report)

    async def get(self, run_id: str) -> PlaybookRunReport:
        """The report of `run_id`; NotFoundError naming it when there is none."""
        return await asyncio.to_thread(self.get_sync, run_id)

    async def latest(self, playbook: str | None = None) -> PlaybookRunReport:
        """The newest report (of `playbook`, when given) by `ended_at`; NotFoundError when there is none."""
        return await asyncio.to_thread(self.latest_sync, playbook)

    async def list(self, playbook: str | None = None, limit: int = 50) -> builtins.list[PlaybookRunReport]:
        """Reports newest first (of `playbook`, when given), at most `limit`."""
        return await asyncio.to_thread(self.list_sync, playbook, limit)

    # ---- for callers that are not on an event loop (the CLI) ------------------------------

    def save_sync(self, report: PlaybookRunReport) -> None:
        """`save` for callers that are not on an event loop."""
        values: dict[str, Any] = {
            "run_id": report.run_id,
            "playbook": report.playbook,
            "version": report.version,
            "status": report.status,
            "trigger": report.trigger,
            "started_at": report.started_at,
            "ended_at": report.ended_at,
            "report": report.model_dump_json(),
        }
        stmt = self._insert(playbook_runs).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_R.run_id], set_={name: stmt.excluded[name] for name in _UPDATED}
        )
        with self._writer.begin() as conn:
            conn.execute(stmt)

    def get_sync(self, run_id: str) -> PlaybookRunReport:
        """`get` for callers that are not on an event loop."""
        with self._engine.connect() as conn:
            found = conn.execute(select(_R.report).where(_R.run_id == run_id)).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"unknown playbook run {run_id!r}: no report was stored under that id")
        return PlaybookRunReport.model_validate_json(found)

    def latest_sync(self, playbook: str | None = None) -> PlaybookRunReport:
        """`latest` for callers that are not on an event loop."""
        with self._engine.connect() as conn:
            found = conn.execute(_newest(playbook).limit(1)).scalar_one_or_none()
        if found is None:
            of = f"of playbook {playbook!r} " if playbook is not None else ""
            raise NotFoundError(f"no playbook run {of}has been reported yet")
        return PlaybookRunReport.model_validate_json(found)

    def list_sync(self, playbook: str | None = None, limit: int = 50) -> builtins.list[PlaybookRunReport]:
        """`list` for callers that are not on an event loop."""
        if not 1 <= limit <= MAX_LIST:
            raise ValueError(f"limit must be between 1 and {MAX_LIST}, not {limit}")
        with self._engine.connect() as conn:
            rows = conn.execute(_newest(playbook).limit(limit)).scalars().all()
        return [PlaybookRunReport.model_validate_json(text) for text in rows]
