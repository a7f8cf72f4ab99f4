"""Approval inbox, users and API tokens.

The inbox is a projection of RemediationWorkflow state (the workflow is the source of
truth). Users carry one role (viewer < approver < admin) and an optional team; their API
tokens are stored only as SHA-256 hex digests (see controller/adapters/identity.py for why a fast
hash is right for 256-bit random tokens).

Revision ID: 0002_inbox_identity
Revises: 0001_audit
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_inbox_identity"
down_revision = "0001_audit"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create approval_inbox, users and api_tokens."""
    op.create_table(
        "approval_inbox",
        sa.Column("proposal_id", sa.String(200), primary_key=True),
        sa.Column("workflow_id", sa.String(400), nullable=False),
        sa.Column("twin_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("risk", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("deadline", _TIME, nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
    )
    # The queue's one query: by status, newest first.
    op.create_index("ix_approval_inbox_status", "approval_inbox", ["status", "created_at"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("team", sa.String(100), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.CheckConstraint("role IN ('viewer', 'approver', 'admin')", name="ck_users_role"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", name="fk_api_tokens_user_id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("last_used_at", _TIME, nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade() -> None:
    """Drop the three tables (the audit ledger is untouched)."""
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_index("ix_approval_inbox_status", table_name="approval_inbox")
    op.drop_table("approval_inbox")
