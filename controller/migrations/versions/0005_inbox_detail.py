"""Approval inbox: the plan in words, the approver groups and what the quorum still lacks.

The queue shows what is required in words (how many approvals, from which groups, which
owning team) wherever the count appears; these columns carry the workflow's view of it.

Revision ID: 0005_inbox_detail
Revises: 0004_user_groups
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_inbox_detail"
down_revision = "0004_user_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add plan, approver_groups and pending to approval_inbox (existing rows: empty)."""
    with op.batch_alter_table("approval_inbox") as batch:
        batch.add_column(sa.Column("plan", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("approver_groups", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("pending", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop the three columns."""
    with op.batch_alter_table("approval_inbox") as batch:
        batch.drop_column("pending")
        batch.drop_column("approver_groups")
        batch.drop_column("plan")
