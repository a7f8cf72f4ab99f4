"""Browser sessions of the web UI, and the owning team of each proposal in the approval inbox.

`web_sessions` keeps server-side sessions: the cookie carries a random id, the table only its
SHA-256 (a leaked table signs nobody in), with the principal it stands for, its CSRF token and
its expiry. `approval_inbox.team` is the target node's owning team, so the queue filters on it
in the database; rows from before stay NULL (no team known). Indexes: (team, created_at) and
(target, created_at) for the filters, (created_at, proposal_id) for the API's keyset pages over
every status; the queue page's pending set comes from the existing (status, created_at) index.

Revision ID: 0007_web_sessions_inbox_team
Revises: 0006_audit_no_replace_indexed
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_web_sessions_inbox_team"
down_revision = "0006_audit_no_replace_indexed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create web_sessions; add approval_inbox.team and the queue's indexes."""
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('token', 'oidc')", name="ck_web_sessions_source"),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    with op.batch_alter_table("approval_inbox") as batch:
        batch.add_column(sa.Column("team", sa.String(100), nullable=True))
    op.create_index("ix_approval_inbox_team", "approval_inbox", ["team", "created_at"])
    op.create_index("ix_approval_inbox_target", "approval_inbox", ["target", "created_at"])
    op.create_index("ix_approval_inbox_created", "approval_inbox", ["created_at", "proposal_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_approval_inbox_created", table_name="approval_inbox")
    op.drop_index("ix_approval_inbox_target", table_name="approval_inbox")
    op.drop_index("ix_approval_inbox_team", table_name="approval_inbox")
    with op.batch_alter_table("approval_inbox") as batch:
        batch.drop_column("team")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")
