"""Ledger fixtures on SQLite (a temp file) and PostgreSQL (a fresh schema per test, dropped afterwards)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from controller.adapters.audit import NoteSigner, SqlAuditLedger
from controller.core.db import create_engine, migrate, scratch_postgres_schema

PG_URL = os.environ.get("TWINOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ORIGIN = "twinops.test/audit"


def _pg_unreachable() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "skip", with the reason shown
        return f"PostgreSQL unreachable at TWINOPS_TEST_POSTGRES_URL={PG_URL}: {type(exc).__name__}: {exc}"
    return None


_PG_SKIP: list[str | None] = []


def pg_skip_reason() -> str | None:
    """Probe PostgreSQL once per session."""
    if not _PG_SKIP:
        _PG_SKIP.append(_pg_unreachable())
    return _PG_SKIP[0]


def require_postgres() -> None:
    """Skip, naming why, when PostgreSQL is unreachable; in CI (CI=true, where it runs) fail instead."""
    reason = pg_skip_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def sqlite_engine_factory(tmp_path: Any) -> Iterator[Callable[[], Engine]]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engines: list[Engine] = []

    def make() -> Engine:
        engine = create_engine(url)
        engines.append(engine)
        return engine

    migrate(make())
    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def pg_engine_factory() -> Iterator[Callable[[], Engine]]:
    require_postgres()
    with scratch_postgres_schema(PG_URL, "twinops_audit_test") as make:
        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_factory(request: pytest.FixtureRequest) -> Callable[[], Engine]:
    factory: Callable[[], Engine] = request.getfixturevalue(
        f"{'pg' if request.param == 'postgres' else 'sqlite'}_engine_factory"
    )
    return factory


@pytest.fixture
def ledger(engine_factory: Callable[[], Engine], signer: NoteSigner) -> SqlAuditLedger:
    return SqlAuditLedger(engine_factory(), signer, head_every_events=5, head_every_seconds=3600)
