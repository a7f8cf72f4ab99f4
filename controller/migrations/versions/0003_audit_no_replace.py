"""Audit ledger: no row can be replaced, in either engine.

SQLite's REPLACE conflict resolution (`INSERT OR REPLACE`, `REPLACE INTO`) deletes the
conflicting row without firing DELETE triggers (unless `recursive_triggers` is on), so
0001's triggers let a row be swapped for another. A BEFORE INSERT trigger now refuses
any insert whose seq, event id or tree size is already taken, before conflict
resolution can delete anything, whatever the connection's pragmas. (`ON CONFLICT DO
UPDATE` already hits the UPDATE triggers; this refuses it one step earlier.)

PostgreSQL has no REPLACE, and its upserts and MERGE fire the row triggers of 0001;
the same explicit refusal is added there so both engines say the same thing.

Revision ID: 0003_audit_no_replace
Revises: 0002_inbox_identity
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003_audit_no_replace"
down_revision = "0002_inbox_identity"
branch_labels = None
depends_on = None

# table -> the SQL condition that a row with NEW's identity already exists
_TAKEN = {
    "audit_events": "EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR event_id = NEW.event_id)",
    "tree_heads": "EXISTS (SELECT 1 FROM tree_heads WHERE tree_size = NEW.tree_size)",
}


def _message(table: str) -> str:
    return f"twinops audit ledger is append-only: INSERT over an existing row of {table} rejected"


def upgrade() -> None:
    """Add the no-replace insert triggers."""
    if op.get_bind().dialect.name == "postgresql":
        for table, taken in _TAKEN.items():
            op.execute(
                f"""
                CREATE FUNCTION twinops_{table}_no_replace() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF {taken} THEN
                        RAISE EXCEPTION '{_message(table)}'
                            USING ERRCODE = 'integrity_constraint_violation';
                    END IF;
                    RETURN NEW;
                END
                $$
                """
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION twinops_{table}_no_replace()"
            )
        return
    for table, taken in _TAKEN.items():
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN {taken} BEGIN "
            f"SELECT RAISE(ABORT, '{_message(table)}'); END"
        )


def downgrade() -> None:
    # Like 0001: a migration tool never loosens the audit ledger.
    raise RuntimeError("the audit ledger's append-only triggers cannot be downgraded")
