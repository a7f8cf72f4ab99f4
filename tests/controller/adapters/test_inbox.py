"""The SQL approval inbox on SQLite and PostgreSQL: idempotent upserts, the queue's views, short ids."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select

from controller.adapters.identity import metadata as identity_metadata
from controller.adapters.inbox import CLOSED_STATUSES, OPEN_STATUSES, SqlApprovalInbox, approval_inbox
from controller.adapters.inbox import metadata as inbox_metadata
from controller.core.errors import AmbiguousIdError, ConfigurationError, NotFoundError
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import assert_models_match_the_migrations
from workflows.ports import ApprovalInbox, InboxEntry, InboxStatus

# The audit suite's database fixtures, reused as they are: a SQLite file per test, and a
# fresh PostgreSQL schema per test (skipped, with the reason, when PostgreSQL is unreachable).
sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def entry(
    proposal_id: str, status: InboxStatus = InboxStatus.PENDING, minute: int = 0, **changes: object
) -> InboxEntry:
    fields: dict[str, object] = {
        "proposal_id": proposal_id,
        "workflow_id": f"remediation-{proposal_id}",
        "twin_id": "shop",
        "status": status,
        "risk": "low",
        "target": "checkout",
        "summary": "scale checkout 4 -> 7 and payments 2 -> 3",
        "created_at": T0 + timedelta(minutes=minute),
        "deadline": T0 + timedelta(hours=1),
        "required_approvals": 1,
    }
    fields.update(changes)
    return InboxEntry.model_validate(fields)


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    return engine_factory()


@pytest.fixture
def inbox(engine: Engine) -> SqlApprovalInbox:
    return SqlApprovalInbox(engine)


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(approval_inbox)).scalar_one())


def test_implements_the_port(inbox: SqlApprovalInbox) -> None:
    assert isinstance(inbox, ApprovalInbox)


def test_only_sqlite_and_postgresql() -> None:
    from sqlalchemy import create_mock_engine

    mock = create_mock_engine("mysql://", executor=lambda *a, **k: None)
    with pytest.raises(ConfigurationError, match="'mysql' is not supported"):
        SqlApprovalInbox(mock)  # type: ignore[arg-type]


async def test_upsert_inserts_and_reads_back(inbox: SqlApprovalInbox) -> None:
    e = entry("p-aaaa1111", approvals=["alice"], reasons=["needs 2 approvals"])
    await inbox.upsert(e)
    assert inbox.get("p-aaaa1111") == e


async def test_upsert_is_idempotent(inbox: SqlApprovalInbox, engine: Engine) -> None:
    e = entry("p-aaaa1111")
    for _ in range(3):  # an activity retried
        await inbox.upsert(e)
    assert rows(engine) == 1
    assert inbox.get(e.proposal_id) == e


async def test_upsert_updates_and_keeps_created_at(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-aaaa1111"))
    later = entry(
        "p-aaaa1111",
        InboxStatus.ESCALATED,
        deadline=T0 + timedelta(hours=2),
        approvals=["alice"],
        reasons=["approval timed out"],
        risk="medium",
    )
    await inbox.upsert(later)
    assert inbox.get("p-aaaa1111") == later


async def test_concurrent_upserts_of_one_proposal(inbox: SqlApprovalInbox, engine: Engine) -> None:
    await asyncio.gather(*(inbox.upsert(entry("p-race", approvals=[f"u{i}"])) for i in range(8)))
    assert rows(engine) == 1


async def test_a_closed_entry_is_never_reopened(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-done", InboxStatus.VERIFYING))
    await inbox.upsert(entry("p-done", InboxStatus.COMPLETED))
    await inbox.upsert(entry("p-done", InboxStatus.VERIFYING))  # a stale attempt that committed late
    assert inbox.get("p-done").status is InboxStatus.COMPLETED
    # Open statuses may go back and forth (compensation shows as executing again) ...
    await inbox.upsert(entry("p-open", InboxStatus.VERIFYING))
    await inbox.upsert(entry("p-open", InboxStatus.EXECUTING))
    assert inbox.get("p-open").status is InboxStatus.EXECUTING
    # ... and a closed status may still be corrected by another closed one.
    await inbox.upsert(entry("p-open", InboxStatus.ROLLED_BACK))
    await inbox.upsert(entry("p-open", InboxStatus.FAILED))
    assert inbox.get("p-open").status is InboxStatus.FAILED


async def test_a_new_run_replaces_a_closed_entry_but_an_old_run_cannot_clobber_it(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-1", InboxStatus.ROLLED_BACK))
    rerun = entry("p-1", InboxStatus.PENDING, minute=30, workflow_id="remediation-p-1-second")
    await inbox.upsert(rerun)
    got = inbox.get("p-1")
    assert (got.workflow_id, got.status, got.created_at) == (rerun.workflow_id, InboxStatus.PENDING, rerun.created_at)
    # A late retry from the first run must not touch the second run's open entry.
    await inbox.upsert(entry("p-1", InboxStatus.ROLLED_BACK))
    assert inbox.get("p-1").workflow_id == "remediation-p-1-second"
    assert inbox.get("p-1").status == InboxStatus.PENDING


async def test_times_come_back_aware_utc(inbox: SqlApprovalInbox) -> None:
    paris = timezone(timedelta(hours=1))
    await inbox.upsert(entry("p-tz", created_at=datetime(2026, 11, 21, 23, 0, tzinfo=paris), deadline=None))
    got = inbox.get("p-tz")
    assert got.created_at == datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    assert got.created_at.tzinfo is UTC
    assert got.deadline is None


async def test_list_defaults_to_open_entries_newest_first(inbox: SqlApprovalInbox) -> None:
    for minute, status in enumerate(InboxStatus):
        await inbox.upsert(entry(f"p-{minute:02d}-{status.value}", status, minute=minute))
    listed = inbox.list()
    assert [e.status for e in listed] == [s for s in reversed(InboxStatus) if s in OPEN_STATUSES]
    assert {InboxStatus.PENDING, InboxStatus.ESCALATED, InboxStatus.EXECUTING, InboxStatus.VERIFYING} <= OPEN_STATUSES
    assert [e.created_at for e in listed] == sorted((e.created_at for e in listed), reverse=True)

    everything = inbox.list(include_closed=True)
    assert [e.status for e in everything] == list(reversed(InboxStatus))

    assert [e.status for e in inbox.list(InboxStatus.DENIED)] == [InboxStatus.DENIED]
    assert [e.status for e in inbox.list(InboxStatus.PENDING, include_closed=True)] == [InboxStatus.PENDING]
    assert len(inbox.list(include_closed=True, limit=3)) == 3
    assert CLOSED_STATUSES.isdisjoint(e.status for e in listed)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        inbox.list(limit=0)


async def test_list_orders_same_time_by_id(inbox: SqlApprovalInbox) -> None:
    for pid in ("p-b", "p-a", "p-c"):
        await inbox.upsert(entry(pid))
    assert [e.proposal_id for e in inbox.list()] == ["p-c", "p-b", "p-a"]
    assert [e.proposal_id for e in await inbox.alist(limit=1)] == ["p-c"]


async def test_get_by_unique_prefix(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-3fa2c1d0e9b8a7f60514"))
    await inbox.upsert(entry("p-77aa00000000000000bb"))
    assert inbox.get("p-3f").proposal_id == "p-3fa2c1d0e9b8a7f60514"
    assert inbox.get("  p-77a ").proposal_id == "p-77aa00000000000000bb"
    assert (await inbox.aget("p-3fa2")).proposal_id == "p-3fa2c1d0e9b8a7f60514"


async def test_ambiguous_prefix_names_the_candidates(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-3fa2aaaa"))
    await inbox.upsert(entry("p-3fa2bbbb", minute=1))
    with pytest.raises(AmbiguousIdError, match=r"'p-3fa2' is ambiguous: it matches p-3fa2bbbb, p-3fa2aaaa") as info:
        inbox.get("p-3fa2")
    assert isinstance(info.value, NotFoundError)
    assert inbox.get("p-3fa2b").proposal_id == "p-3fa2bbbb"


async def test_exact_id_wins_over_longer_ids_it_prefixes(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-abc"))
    await inbox.upsert(entry("p-abcdef"))
    assert inbox.get("p-abc").proposal_id == "p-abc"


async def test_unknown_ids(inbox: SqlApprovalInbox) -> None:
    await inbox.upsert(entry("p-abc"))
    for wanted in ("p-zzz", "", "   ", "p-%", "p-_bc", "P-ABC"):
        with pytest.raises(NotFoundError, match=f"unknown proposal {wanted!r}"):
            inbox.get(wanted)


def test_models_match_the_migration(engine: Engine) -> None:
    """What the code declares is what migration 0002 built (types, nullability, indexes, constraints)."""
    assert_models_match_the_migrations(engine, inbox_metadata, identity_metadata)


async def test_a_rerun_under_the_same_workflow_id_replaces_the_closed_entry(inbox: SqlApprovalInbox) -> None:
    """The agent re-proposes the same plan under the same workflow id: only the start time tells runs apart."""
    await inbox.upsert(entry("p-same", InboxStatus.REJECTED))
    rerun = entry("p-same", InboxStatus.PENDING, minute=5, plan="scale checkout 4 -> 7", pending=["1 more from sre"])
    await inbox.upsert(rerun)
    got = inbox.get("p-same")
    assert (got.status, got.created_at) == (InboxStatus.PENDING, rerun.created_at)
    assert (got.plan, got.pending) == ("scale checkout 4 -> 7", ["1 more from sre"])
    assert [e.proposal_id for e in inbox.list()] == ["p-same"], "a live request is always in the queue"
    # The first run's late retry (same workflow id, its own start time) must not close the new run's entry.
    await inbox.upsert(entry("p-same", InboxStatus.REJECTED))
    assert inbox.get("p-same").status == InboxStatus.PENDING
    # The new run itself moves on as usual.
    await inbox.upsert(entry("p-same", InboxStatus.EXECUTING, minute=5))
    assert inbox.get("p-same").status == InboxStatus.EXECUTING


async def test_a_rerun_replaces_the_open_entry_of_a_killed_run(inbox: SqlApprovalInbox) -> None:
    """A run terminated while pending never closed its entry; the next run of that workflow id takes it over."""
    await inbox.upsert(entry("p-killed", InboxStatus.PENDING))
    await inbox.upsert(entry("p-killed", InboxStatus.PENDING, minute=10, approvals=[]))
    assert inbox.get("p-killed").created_at == T0 + timedelta(minutes=10)
