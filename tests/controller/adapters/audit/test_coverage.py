"""Every entry must be under a signed head: in the database once a head is overdue, in an export always."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from controller.adapters.audit import SqlAuditLedger, VerificationReport, verify_export, write_export
from controller.adapters.audit.canonical import canonical_json, entry_bytes, entry_fields
from controller.adapters.audit.ledger import row_entry
from controller.adapters.audit.merkle import leaf_hash
from tests.controller.adapters.audit.factory import T0, step_event
from tests.controller.adapters.audit.test_ledger import drop_triggers, sql

LATER = T0 + timedelta(days=1)  # long after every head of the test log was due


def at(ledger: SqlAuditLedger, now: datetime) -> SqlAuditLedger:
    """The same log (head every 5 events or hour) seen by a verifier whose clock reads `now`."""
    return SqlAuditLedger(ledger.engine, ledger.signer, head_every_events=5, head_every_seconds=3600, clock=lambda: now)


def logged(ledger: SqlAuditLedger, n: int = 23) -> None:
    """n events, heads at 1, 6, 11, 16, 21 and one at n for everything."""
    for i in range(n):
        ledger.append_sync(step_event(i))
    ledger.publish_head()


def rewrite_consistently(ledger: SqlAuditLedger, seq: int) -> None:
    """Change a row's actor and recompute its leaf hash, as someone with write access would."""
    sql(ledger.engine, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = :s", s=seq)
    with ledger.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).one()
    sql(
        ledger.engine,
        "UPDATE audit_events SET leaf_hash = :h WHERE seq = :s",
        h=leaf_hash(entry_bytes(row_entry(row))).hex(),
        s=seq,
    )


def forged_entry(seq: int, i: int = 99) -> dict[str, object]:
    """A well-formed entry (correct leaf hash) that was never logged."""
    fields = entry_fields(step_event(i), seq)
    return {**fields, "leaf_hash": leaf_hash(entry_bytes(fields)).hex()}


def assert_uncovered(report: VerificationReport, first_seq: int) -> None:
    assert not report.ok
    unsigned = [p for p in report.problems if p.kind == "unsigned" and p.seq is not None]
    assert unsigned, report.problems
    assert unsigned[0].seq == first_seq and "not covered by any signed head" in unsigned[0].message


# -- the database --------------------------------------------------------------------------------


def test_db_rows_rewritten_and_every_head_deleted(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    drop_triggers(ledger.engine)
    rewrite_consistently(ledger, 3)
    sql(ledger.engine, "DELETE FROM tree_heads")
    report = at(ledger, LATER).verify()
    assert_uncovered(report, 0)
    assert "no valid signed head at all" in report.problems[0].message


def test_db_events_13_to_22_deleted_with_their_heads(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "DELETE FROM audit_events WHERE seq >= 13")
    sql(ledger.engine, "DELETE FROM tree_heads WHERE tree_size > 13")  # the head at 23 (and 16, 21) go too
    assert_uncovered(at(ledger, LATER).verify(), 11)


def test_db_every_head_deleted(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "DELETE FROM tree_heads")
    assert_uncovered(at(ledger, LATER).verify(), 0)


def test_db_backdated_event_appended_after_the_last_head(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    entry = forged_entry(23)
    columns = {
        **entry,
        "target_nodes": canonical_json(entry["target_nodes"]).decode(),
        "payload": canonical_json(entry["payload"]).decode(),
    }
    names = ", ".join(columns)
    sql(ledger.engine, f"INSERT INTO audit_events ({names}) VALUES ({', '.join(':' + n for n in columns)})", **columns)
    assert_uncovered(at(ledger, LATER).verify(), 23)


def test_db_fresh_tail_passes_until_its_head_is_overdue(ledger: SqlAuditLedger) -> None:
    for i in range(3):
        ledger.append_sync(step_event(i))  # head at 1; seq 1 and 2 wait for the next head
    fresh = at(ledger, T0 + timedelta(minutes=1)).verify()
    assert fresh.ok and fresh.unsigned_tail == 2
    assert_uncovered(at(ledger, T0 + timedelta(hours=3)).verify(), 1)


def test_db_more_unsigned_than_the_writers_allow(ledger: SqlAuditLedger) -> None:
    writer = SqlAuditLedger(ledger.engine, ledger.signer, head_every_events=50, head_every_seconds=3600)
    for i in range(8):
        writer.append_sync(step_event(i))  # head at 1 only: 7 unsigned, but this log signs every 5
    report = at(ledger, T0 + timedelta(minutes=1)).verify()
    assert_uncovered(report, 1)
    assert "7 after the last signed head" in report.problems[0].message


# -- the export ----------------------------------------------------------------------------------


def export_lines(ledger: SqlAuditLedger) -> list[dict[str, object]]:
    out = io.BytesIO()
    write_export(ledger, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def reassembled(lines: list[dict[str, object]], keep: Callable[[dict[str, object]], bool] = lambda _: True) -> bytes:
    """The export with only the lines `keep` accepts, its header counts made to match."""
    body = [line for line in lines[1:] if keep(line)]
    header = {
        **lines[0],
        "events": sum(line["type"] == "event" for line in body),
        "heads": sum(line["type"] == "head" for line in body),
    }
    return b"".join(canonical_json(line) + b"\n" for line in [header, *body])


def test_export_rows_rewritten_and_every_head_removed(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    lines = export_lines(ledger)
    target = next(line for line in lines if line.get("seq") == 3)
    target["actor"] = "user:mallory"
    target["leaf_hash"] = leaf_hash(entry_bytes(target)).hex()
    report = verify_export(reassembled(lines, lambda line: line["type"] != "head"), ledger.verifier)
    assert_uncovered(report, 0)


def test_export_events_13_to_22_removed_with_their_heads(ledger: SqlAuditLedger) -> None:
    logged(ledger)

    def keep(line: dict[str, object]) -> bool:
        if line["type"] == "event":
            return int(str(line["seq"])) < 13
        return int(str(line["tree_size"])) <= 13

    assert_uncovered(verify_export(reassembled(export_lines(ledger), keep), ledger.verifier), 11)


def test_export_without_head_lines(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    report = verify_export(reassembled(export_lines(ledger), lambda line: line["type"] != "head"), ledger.verifier)
    assert_uncovered(report, 0)
    assert any(p.message == "the export has no signed head (head lines removed?)" for p in report.problems)


def test_export_with_a_forged_event_after_the_last_head(ledger: SqlAuditLedger) -> None:
    logged(ledger)
    lines = export_lines(ledger)
    last_event = max(i for i, line in enumerate(lines) if line["type"] == "event")
    lines.insert(last_event + 1, {"type": "event", **forged_entry(23)})
    assert_uncovered(verify_export(reassembled(lines), ledger.verifier), 23)


@pytest.mark.parametrize("n", [0, 1, 23])
def test_an_honest_export_is_fully_covered(ledger: SqlAuditLedger, n: int) -> None:
    logged(ledger, n)
    report = verify_export(reassembled(export_lines(ledger)), ledger.verifier)
    assert report.ok, report.problems
    assert report.verified_size == report.events == n
