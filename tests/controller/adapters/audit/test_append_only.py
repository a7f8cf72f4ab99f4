"""Raw SQL cannot replace a ledger row: REPLACE, upserts and MERGE are refused on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text

from controller.adapters.audit import SqlAuditLedger
from tests.controller.adapters.audit.factory import step_event

_COLUMNS = "seq, event_id, time, remediation_id, workflow_id, run_id, actor, kind, target_nodes, payload, leaf_hash"
_FORGED_ROW = _COLUMNS.replace("actor", "'user:mallory' AS actor")  # the row at seq 3 with another actor
_FORGED_AT_100 = _FORGED_ROW.replace("seq,", "100,", 1)  # the same event id under a new seq

# name -> (SQLite statement, PostgreSQL statement); where PostgreSQL has no such verb, its nearest equivalent.
_REPLACEMENTS = {
    "insert_or_replace_seq": (
        f"INSERT OR REPLACE INTO audit_events SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3",
        f"INSERT INTO audit_events SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3 "
        "ON CONFLICT (seq) DO UPDATE SET actor = EXCLUDED.actor",
    ),
    "replace_into_seq": (
        f"REPLACE INTO audit_events SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3",
        f"MERGE INTO audit_events t USING (SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3) s "
        "ON t.seq = s.seq WHEN MATCHED THEN UPDATE SET actor = s.actor",
    ),
    "insert_or_replace_event_id": (
        f"INSERT OR REPLACE INTO audit_events SELECT {_FORGED_AT_100} FROM audit_events WHERE seq = 3",
        f"INSERT INTO audit_events SELECT {_FORGED_AT_100} FROM audit_events WHERE seq = 3 "
        "ON CONFLICT (event_id) DO UPDATE SET seq = EXCLUDED.seq",
    ),
    "upsert_do_update": (
        f"INSERT INTO audit_events SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3 "
        "ON CONFLICT (seq) DO UPDATE SET actor = excluded.actor",
        f"INSERT INTO audit_events SELECT {_FORGED_ROW} FROM audit_events WHERE seq = 3 "
        "ON CONFLICT (seq) DO UPDATE SET actor = EXCLUDED.actor",
    ),
    "replace_head": (
        "REPLACE INTO tree_heads SELECT tree_size, root_hash, time, 'forged' FROM tree_heads WHERE tree_size = 1",
        "INSERT INTO tree_heads SELECT tree_size, root_hash, time, 'forged' FROM tree_heads WHERE tree_size = 1 "
        "ON CONFLICT (tree_size) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
    ),
}


def _snapshot(ledger: SqlAuditLedger) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with ledger.engine.connect() as conn:
        events = [tuple(r) for r in conn.execute(text(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq"))]
        heads = [tuple(r) for r in conn.execute(text("SELECT * FROM tree_heads ORDER BY tree_size"))]
    return events, heads


@pytest.mark.parametrize("case", sorted(_REPLACEMENTS))
def test_no_row_can_be_replaced(ledger: SqlAuditLedger, case: str) -> None:
    for i in range(6):
        ledger.append_sync(step_event(i))
    ledger.publish_head()
    before = _snapshot(ledger)
    statement = _REPLACEMENTS[case][ledger.engine.dialect.name == "postgresql"]
    # SQLite parses `INSERT ... SELECT ... ON CONFLICT` only with a WHERE clause, which every case has.
    with pytest.raises(exc.DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(text(statement))
    assert _snapshot(ledger) == before
    assert ledger.verify().ok


def test_plain_appends_still_work_after_the_refusals(ledger: SqlAuditLedger) -> None:
    ledger.append_sync(step_event(0))
    with pytest.raises(exc.DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(
            text(_REPLACEMENTS["upsert_do_update"][ledger.engine.dialect.name == "postgresql"].replace("3", "0"))
        )
    ledger.append_sync(step_event(1))
    assert ledger.publish_head().tree_size == 2 and ledger.verify().ok
