"""Database engines and schema migrations for the controller's own tables (audit, inbox, users).

SQLite is the embedded default; PostgreSQL (or any SQLAlchemy URL) is configuration
only. Migrations are Alembic, configured in code so they run from an installed
package without an alembic.ini.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, event, text
from sqlalchemy import create_engine as _sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from controller.core.errors import ConfigurationError

__all__ = ["MIGRATIONS_DIR", "UtcDateTime", "create_engine", "migrate", "scratch_postgres_schema", "sqlite_immediate"]

# Alembic's script directory is controller/migrations, beside the groups: scripts, not importable code.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
# Execution option read by the SQLite begin hook: "IMMEDIATE" takes the write lock at
# BEGIN, which is how SQLite serializes appends (a deferred BEGIN would fail late with
# SQLITE_BUSY when two writers both upgrade from read to write).
_SQLITE_BEGIN = "twinops_sqlite_begin"
sqlite_immediate: dict[str, Any] = {_SQLITE_BEGIN: "IMMEDIATE"}
_MIGRATE_LOCK = 0x7477696E6F707300  # "twinops\0": one migrator at a time on PostgreSQL
_SUPPORTED = ("sqlite", "postgresql")  # the inbox and ledger use dialect-specific upserts and locks


def _parse_url(url: str) -> URL:
    """The parsed URL, or a one-line ConfigurationError that names the setting (never the password)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            "TWINOPS_DATABASE_URL: not a database URL "
            "(expected dialect+driver://user:password@host/name, e.g. postgresql+psycopg://twinops@db/twinops)"
        ) from exc
    if parsed.get_backend_name() not in _SUPPORTED:
        raise ConfigurationError(
            f"TWINOPS_DATABASE_URL {parsed.render_as_string(hide_password=True)!r}: "
            f"database {parsed.get_backend_name()!r} is not supported (use {' or '.join(_SUPPORTED)})"
        )
    return parsed


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        try:
            return _sa_create_engine(url, **kwargs)
        except (ImportError, NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"TWINOPS_DATABASE_URL {parsed.render_as_string(hide_password=True)!r}: "
                f"driver {parsed.get_driver_name()!r} is not installed ({exc})"
            ) from exc
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", 30.0)
    engine = _sa_create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (safe to call on every start)."""
    from alembic import command  # imported here: a quarter second the CLI's other commands need not pay
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        conn.execution_options(**sqlite_immediate)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


@contextmanager
def scratch_postgres_schema(url: str, prefix: str = "twinops_scratch") -> Iterator[Callable[[], Engine]]:
    """A fresh, migrated PostgreSQL schema for tests and benchmarks, dropped afterwards.

    Yields a factory of engines bound to the schema (one per concurrent writer, if needed).
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _sa_create_engine(url, connect_args={"connect_timeout": 3})
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engines: list[Engine] = []

    def make() -> Engine:
        engines.append(create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10))
        return engines[-1]

    try:
        migrate(make())
        yield make
    finally:
        for engine in engines:
            engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores no offset) as on PostgreSQL; a naive one is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; give it a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
