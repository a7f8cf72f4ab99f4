"""Alembic environment: always online, on the connection `controller.core.db.migrate` hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through controller.core.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=None,
    # SQLite cannot ALTER most things; batch mode lets later migrations change tables there too.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
