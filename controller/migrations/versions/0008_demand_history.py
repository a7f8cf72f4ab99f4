"""Per-node demand history: the downsampled series the agent's forecasts read.

`demand_history` keeps, per twin and node, one row per time bucket (5 minutes by default): the
sum and count of the offered demand observed in it (its mean is sum / samples) and when it was
last observed, which makes a retried record a no-op. `bucket_start` is the bucket's start in
epoch seconds, not an index, so a changed bucket width never reinterprets old rows. The primary
key (twin_id, node, bucket_start) serves reads of a twin's window in order; the index on
(twin_id, bucket_start) serves each record's look at the current bucket and the pruning of
buckets older than the retention (14 days by default).

Revision ID: 0008_demand_history
Revises: 0007_web_sessions_inbox_team
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_demand_history"
down_revision = "0007_web_sessions_inbox_team"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create demand_history and its bucket index."""
    op.create_table(
        "demand_history",
        sa.Column("twin_id", sa.Text(), primary_key=True),
        sa.Column("node", sa.Text(), primary_key=True),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True),
        sa.Column("demand_sum", sa.Double(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("last_observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("samples > 0", name="ck_demand_history_samples"),
    )
    op.create_index("ix_demand_history_bucket", "demand_history", ["twin_id", "bucket_start"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_demand_history_bucket", table_name="demand_history")
    op.drop_table("demand_history")
