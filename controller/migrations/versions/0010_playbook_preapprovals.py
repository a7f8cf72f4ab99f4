"""Pre-approvals of playbook runs: approvals given ahead of time to one scheduled run, used once.

`playbook_preapprovals` keeps one row per pre-approval: the grant itself (its signed approvals)
as the model's JSON, the columns a claim selects on, and who claimed it. A claim is one
conditional UPDATE (`used_by_run IS NULL`), so a grant covers exactly one run.

Revision ID: 0010_playbook_preapprovals
Revises: 0009_playbook_runs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_playbook_preapprovals"
down_revision = "0009_playbook_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create playbook_preapprovals and its index."""
    op.create_table(
        "playbook_preapprovals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("playbook", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("playbook_digest", sa.String(64), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grant", sa.Text(), nullable=False),
        sa.Column("used_by_run", sa.String(400), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_playbook_preapprovals_playbook", "playbook_preapprovals", ["playbook", "run_at"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_playbook_preapprovals_playbook", table_name="playbook_preapprovals")
    op.drop_table("playbook_preapprovals")
