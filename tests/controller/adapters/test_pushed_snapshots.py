"""SqlPushedSnapshots (table twin_snapshots, migration 0011) and the push twin source, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select

from controller.adapters import pushed_snapshots
from controller.adapters.identity import metadata as identity_metadata
from controller.adapters.pushed_snapshots import PushedTwinSource, SqlPushedSnapshots, twin_snapshots
from controller.adapters.pushed_snapshots import metadata as pushed_metadata
from controller.core.db import create_engine
from controller.core.settings import Settings
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import alembic, assert_models_match_the_migrations
from twin.contract import Snapshot, parse_snapshot
from twin.sources import StaleSnapshotError, TwinSourceError

sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    return engine_factory()


def snap(at: datetime, twin: str = "shop", replicas: int = 2) -> Snapshot:
    return parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": twin,
            "observed_at": at.isoformat(),
            "nodes": [{"id": "api", "replicas": replicas, "capacity_per_replica": 100.0, "max_replicas": 9}],
        }
    )


def test_the_declared_table_is_what_the_migration_built_and_it_goes_down_and_up(engine: Engine) -> None:
    assert_models_match_the_migrations(engine, pushed_metadata, identity_metadata)
    alembic(engine, command.downgrade, "0010_playbook_preapprovals")
    assert "twin_snapshots" not in inspect(engine).get_table_names()
    alembic(engine, command.upgrade, "head")
    assert_models_match_the_migrations(engine, pushed_metadata, identity_metadata)


async def test_a_push_is_stored_once_and_the_newest_is_read(engine: Engine) -> None:
    store = SqlPushedSnapshots(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    first = await store.store(snap(now), "am")
    assert first.stored and first.newest
    again = await store.store(snap(now, replicas=3), "am")  # the same moment again: a retried push
    assert not again.stored and again.newest
    late = await store.store(snap(now - timedelta(minutes=5)), "am")
    assert late.stored and not late.newest
    other = await store.store(snap(now - timedelta(hours=1), twin="lab"), "am")
    assert other.stored and other.newest
    newest = await store.latest("shop")
    assert newest is not None and newest.observed_at == now and newest.nodes[0].replicas == 2
    assert await store.latest("nowhere") is None


async def test_only_the_newest_are_kept(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pushed_snapshots, "KEEP_PER_TWIN", 3)
    store = SqlPushedSnapshots(engine)
    t0 = datetime.now(UTC).replace(microsecond=0)
    for i in range(6):
        await store.store(snap(t0 + timedelta(seconds=i)), "am")
    await store.store(snap(t0, twin="lab"), "am")
    with engine.connect() as conn:
        kept = conn.execute(
            select(twin_snapshots.c.observed_at).where(twin_snapshots.c.twin_id == "shop").order_by("observed_at")
        ).scalars()
        assert [k.replace(tzinfo=UTC) if k.tzinfo is None else k for k in kept] == [
            t0 + timedelta(seconds=i) for i in (3, 4, 5)
        ]
        assert conn.execute(select(func.count()).select_from(twin_snapshots)).scalar_one() == 4


async def test_the_push_source_fails_closed_without_a_fresh_push(engine: Engine) -> None:
    store = SqlPushedSnapshots(engine)
    source = PushedTwinSource(store, "shop", max_age_seconds=60)
    with pytest.raises(TwinSourceError, match="no snapshot pushed yet"):
        await source.latest()
    await store.store(snap(datetime.now(UTC) - timedelta(minutes=5)), "am")
    with pytest.raises(StaleSnapshotError, match=r"30\ds old"):
        await source.latest()
    fresh = snap(datetime.now(UTC))
    await store.store(fresh, "am")
    assert await source.latest() == fresh
    # A snapshot from a clock far ahead is not "fresh for ever": it is refused, naming the skew.
    await store.store(snap(datetime.now(UTC) + timedelta(hours=1)), "am")
    with pytest.raises(StaleSnapshotError, match="ahead of this clock"):
        await source.latest()


async def test_the_worker_reads_pushed_snapshots_through_its_own_database(tmp_path: Path) -> None:
    from controller.app.worker import Services

    settings = Settings(
        home=tmp_path,
        twin_source="push",
        twin_id="shop",
        actuator="webhook",  # a pushed twin is a real estate: its actions go out through the webhook
        actuator_url="http://127.0.0.1:9/actions",
        actuator_secret="s",
    )
    services = Services.from_settings(settings)
    assert isinstance(services.twin, PushedTwinSource)
    assert services.twin.store is not None
    fresh = snap(datetime.now(UTC))
    await services.twin.store.store(fresh, "am")
    assert await services.twin.latest() == fresh
    assert (
        await SqlPushedSnapshots(create_engine(Settings(home=tmp_path).resolved_database_url)).latest("shop") == fresh
    )
