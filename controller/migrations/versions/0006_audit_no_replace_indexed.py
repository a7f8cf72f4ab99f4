"""Audit ledger: the PostgreSQL no-replace check uses its indexes (appends stay O(log n)).

0003's trigger asked `EXISTS (... WHERE seq = NEW.seq OR event_id = NEW.event_id)`. PL/pgSQL
caches a generic plan for it while the table is still small, and for the OR that plan is a
sequential scan: every append then read the whole ledger (building 10,000 events took 4.3 s,
100,000 took minutes). Two EXISTS, each an equality on a unique index, keep index lookups:
10,000 in 0.44 s, 20,000 in 0.97 s. The refusal and its message are unchanged. SQLite plans
the OR with both indexes and needs no change.

Revision ID: 0006_audit_no_replace_indexed
Revises: 0005_inbox_detail
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006_audit_no_replace_indexed"
down_revision = "0005_inbox_detail"
branch_labels = None
depends_on = None

_MESSAGE = "twinops audit ledger is append-only: INSERT over an existing row of audit_events rejected"


def _replace(condition: str) -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION twinops_audit_events_no_replace() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {condition} THEN
                RAISE EXCEPTION '{_MESSAGE}'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )


def upgrade() -> None:
    """Replace the PostgreSQL check function's body (same name, same trigger, same refusal)."""
    if op.get_bind().dialect.name == "postgresql":
        _replace(
            "EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq) "
            "OR EXISTS (SELECT 1 FROM audit_events WHERE event_id = NEW.event_id)"
        )


def downgrade() -> None:
    """Back to 0003's body: the same refusal (slower on large ledgers), never a looser one."""
    if op.get_bind().dialect.name == "postgresql":
        _replace("EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR event_id = NEW.event_id)")
