"""Checks every SQL adapter's tests share: its declared tables are what its migration built, and Alembic by hand."""

from __future__ import annotations

from collections.abc import Callable

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData

from controller.core.db import MIGRATIONS_DIR, sqlite_immediate


def assert_models_match_the_migrations(engine: Engine, *metadatas: MetaData) -> None:
    """The tables of `metadatas` as declared in code equal the migrated schema (types, nullability, indexes,
    constraints); the database's other tables are not compared."""
    declared = MetaData()
    for metadata in metadatas:
        for table in metadata.tables.values():
            table.to_metadata(declared)
    mine = set(declared.tables)

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return type_ != "table" or name in mine

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        assert compare_metadata(context, declared) == []


def alembic(engine: Engine, action: Callable[[Config, str], None], revision: str) -> None:
    """Run an Alembic command (`command.upgrade`, `command.downgrade`) to `revision` on `engine`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        conn.execution_options(**sqlite_immediate)
        with conn.begin():
            config.attributes["connection"] = conn
            action(config, revision)
