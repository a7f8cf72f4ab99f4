"""The `system` role (machines that post alerts and snapshots) and the snapshots pushed to the API.

`users.role` may now be `system`: such a user posts to `POST /api/v1/alerts` and
`POST /api/v1/twins/{id}/snapshots` and nothing else (it cannot read or approve).

`twin_snapshots` keeps the snapshots pushed for each twin (the `push` twin source reads the
newest); one row per twin and observation time, so a push retried by its sender is stored once.

Revision ID: 0011_system_role_twin_snapshots
Revises: 0010_playbook_preapprovals
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_system_role_twin_snapshots"
down_revision = "0010_playbook_preapprovals"
branch_labels = None
depends_on = None

_WITH_SYSTEM = "role IN ('viewer', 'approver', 'admin', 'system')"
_WITHOUT = "role IN ('viewer', 'approver', 'admin')"


_DEPENDENTS = ("api_tokens", "user_groups")
"""The tables whose rows point at users.id."""


def _role_check(condition: str) -> None:
    """Replace the role CHECK. SQLite cannot alter one: the table is copied, and dropping the old copy
    with foreign keys on would delete every user's groups (ON DELETE CASCADE) and refuse while tokens
    exist. So on SQLite the rows pointing at users are set aside for the copy and put back after."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for table in _DEPENDENTS:
            op.execute(f"CREATE TEMP TABLE _keep_{table} AS SELECT * FROM {table}")
            op.execute(f"DELETE FROM {table}")
    with op.batch_alter_table("users", recreate="auto") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint("ck_users_role", condition)
    if sqlite:
        for table in _DEPENDENTS:
            op.execute(f"INSERT INTO {table} SELECT * FROM _keep_{table}")
            op.execute(f"DROP TABLE _keep_{table}")


def upgrade() -> None:
    """Allow the system role; create twin_snapshots."""
    _role_check(_WITH_SYSTEM)
    op.create_table(
        "twin_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("twin_id", sa.String(200), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed_by", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("twin_id", "observed_at", name="uq_twin_snapshots_twin_observed"),
    )


def downgrade() -> None:
    """Drop twin_snapshots; system users go with the role (their tokens first)."""
    op.drop_table("twin_snapshots")
    op.execute("DELETE FROM api_tokens WHERE user_id IN (SELECT id FROM users WHERE role = 'system')")
    op.execute("DELETE FROM user_groups WHERE user_id IN (SELECT id FROM users WHERE role = 'system')")
    op.execute("DELETE FROM users WHERE role = 'system'")
    _role_check(_WITHOUT)
