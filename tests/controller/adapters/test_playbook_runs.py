"""The SQL playbook run store on SQLite and PostgreSQL: round trips, idempotent saves, newest first, not found."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select

from controller.adapters.playbook_runs import SqlPlaybookRunStore, playbook_runs
from controller.adapters.playbook_runs import metadata as runs_metadata
from controller.core.errors import ConfigurationError, NotFoundError
from controller.testing import FakePlaybookRunStore
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import alembic, assert_models_match_the_migrations
from tests.controller.playbook_run_factory import T0, full_report, small_report
from workflows.playbook_contracts import PlaybookRunStore

# The audit suite's database fixtures: a SQLite file per test, and a fresh PostgreSQL schema per
# test (skipped, with the reason, when PostgreSQL is unreachable; failed in CI).
sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    return engine_factory()


@pytest.fixture
def store(engine: Engine) -> SqlPlaybookRunStore:
    return SqlPlaybookRunStore(engine)


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(playbook_runs)).scalar_one())


def test_implements_the_port(store: SqlPlaybookRunStore) -> None:
    assert isinstance(store, PlaybookRunStore)


def test_only_sqlite_and_postgresql() -> None:
    from sqlalchemy import create_mock_engine

    mock = create_mock_engine("mysql://", executor=lambda *a, **k: None)
    with pytest.raises(ConfigurationError, match="'mysql' is not supported"):
        SqlPlaybookRunStore(mock)  # type: ignore[arg-type]


async def test_a_saved_report_reads_back_equal(store: SqlPlaybookRunStore) -> None:
    report = full_report()
    await store.save(report)
    assert await store.get(report.run_id) == report
    assert store.get_sync(report.run_id) == report
    back = await store.get(report.run_id)
    assert back.started_at == T0 and back.started_at.tzinfo is not None
    assert [n.before.demand_rps if n.before else "none" for n in back.nodes][:2] == [880.0, None]  # a gap stays None


async def test_saving_twice_keeps_one_row_holding_the_last_save(store: SqlPlaybookRunStore, engine: Engine) -> None:
    first = full_report(status="waiting_approval", stopped=None)
    retried = full_report(status="partial")
    await store.save(first)
    await store.save(first)  # a retried activity
    assert rows(engine) == 1
    await store.save(retried)
    assert rows(engine) == 1
    assert await store.get(first.run_id) == retried
    with engine.connect() as conn:
        assert conn.execute(select(playbook_runs.c.status)).scalar_one() == "partial"


async def test_an_unknown_run_is_not_found_naming_it(store: SqlPlaybookRunStore) -> None:
    await store.save(small_report("run-a"))
    with pytest.raises(NotFoundError, match="unknown playbook run 'run-b'"):
        await store.get("run-b")
    with pytest.raises(NotFoundError, match="unknown playbook run 'run-'"):
        store.get_sync("run-")  # a prefix is not an id


Store = SqlPlaybookRunStore | FakePlaybookRunStore


async def check_latest(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no playbook run has been reported yet"):
        await store.latest()
    # Saved out of order: ended_at decides, not the order of saves or the started_at.
    await store.save(small_report("n-2", ended_minutes=20))
    await store.save(small_report("n-1", ended_minutes=10))
    await store.save(small_report("w-1", playbook="weekly", ended_minutes=15))
    late_start = small_report("n-0", ended_minutes=5).model_copy(update={"started_at": T0 + timedelta(minutes=4)})
    await store.save(late_start)
    assert (await store.latest()).run_id == "n-2"
    assert (await store.latest("weekly")).run_id == "w-1"
    with pytest.raises(NotFoundError, match="no playbook run of playbook 'monthly' has been reported yet"):
        await store.latest("monthly")


async def check_list(store: Store) -> None:
    assert await store.list() == []
    for minute, run_id, playbook in [(3, "a", "nightly"), (1, "b", "weekly"), (2, "c", "nightly"), (4, "d", "weekly")]:
        await store.save(small_report(run_id, playbook=playbook, ended_minutes=minute))
    assert [r.run_id for r in await store.list()] == ["d", "a", "c", "b"]
    assert [r.run_id for r in await store.list("nightly")] == ["a", "c"]
    assert [r.run_id for r in await store.list(limit=2)] == ["d", "a"]
    # Two runs that ended at the same moment come in a stable order (run id, descending).
    await store.save(small_report("e", ended_minutes=4))
    assert [r.run_id for r in await store.list(limit=2)] == ["e", "d"]
    with pytest.raises(ValueError, match="limit must be"):
        await store.list(limit=0)


async def check_save_get(store: Store) -> None:
    first = full_report(status="waiting_approval", stopped=None)
    retried = full_report(status="partial")
    await store.save(first)
    await store.save(first)  # a retried activity
    await store.save(retried)
    assert await store.get(first.run_id) == retried
    assert [r.run_id for r in await store.list()] == [first.run_id]
    with pytest.raises(NotFoundError, match="unknown playbook run 'run-b'"):
        await store.get("run-b")


async def test_latest_is_the_newest_by_ended_at_of_all_or_of_one_playbook(store: SqlPlaybookRunStore) -> None:
    await check_latest(store)
    assert store.latest_sync("nightly").run_id == "n-2"


async def test_list_is_newest_first_filtered_and_limited(store: SqlPlaybookRunStore) -> None:
    await check_list(store)
    assert [r.run_id for r in store.list_sync("weekly", limit=1)] == ["d"]


async def test_the_fake_store_keeps_the_same_semantics() -> None:
    assert isinstance(FakePlaybookRunStore(), PlaybookRunStore)
    await check_latest(FakePlaybookRunStore())
    await check_list(FakePlaybookRunStore())
    fake = FakePlaybookRunStore()
    await check_save_get(fake)
    assert len(fake.saves) == 3 and list(fake.reports) == [full_report().run_id]


async def test_the_sql_store_saves_and_gets_as_the_fake_does(store: SqlPlaybookRunStore) -> None:
    await check_save_get(store)


# ---- schema --------------------------------------------------------------------------------


def test_models_match_the_migration(engine: Engine) -> None:
    """What the code declares is what migration 0009 built (types, nullability, indexes)."""
    assert_models_match_the_migrations(engine, runs_metadata)


async def test_migration_0009_down_and_up(engine: Engine) -> None:
    alembic(engine, command.downgrade, "0008_demand_history")
    assert "playbook_runs" not in inspect(engine).get_table_names()
    assert "demand_history" in inspect(engine).get_table_names()
    alembic(engine, command.upgrade, "head")
    assert "playbook_runs" in inspect(engine).get_table_names()
    store = SqlPlaybookRunStore(engine)
    await store.save(small_report("after-upgrade"))
    assert (await store.latest()).run_id == "after-upgrade"
