"""Playbook run reports: what each run of a playbook did, for `twinops report` and the web pages.

`playbook_runs` keeps one row per run, keyed by the run's workflow id: the report itself as
the model's JSON (`report`), and the columns the reads filter and sort on. A retried save
replaces the row. The index on (playbook, ended_at) serves "the newest runs of this playbook",
the one on (ended_at, run_id) the newest runs of all of them, in a stable order.

Revision ID: 0009_playbook_runs
Revises: 0008_demand_history
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_playbook_runs"
down_revision = "0008_demand_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create playbook_runs and its two indexes."""
    op.create_table(
        "playbook_runs",
        sa.Column("run_id", sa.String(400), primary_key=True),
        sa.Column("playbook", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
    )
    op.create_index("ix_playbook_runs_playbook", "playbook_runs", ["playbook", "ended_at"])
    op.create_index("ix_playbook_runs_ended", "playbook_runs", ["ended_at", "run_id"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_playbook_runs_ended", table_name="playbook_runs")
    op.drop_index("ix_playbook_runs_playbook", table_name="playbook_runs")
    op.drop_table("playbook_runs")
