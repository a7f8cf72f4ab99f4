"""The SQL ledger on SQLite and PostgreSQL: append-only, idempotent, serialized, tamper-evident."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, exc, text

from controller.adapters.audit import NoteSigner, SqlAuditLedger
from controller.adapters.audit.canonical import entry_bytes
from controller.adapters.audit.ledger import row_entry
from controller.adapters.audit.merkle import leaf_hash
from controller.core.errors import LedgerConflictError, NotFoundError
from tests.controller.adapters.audit.factory import remediation_trail, step_event
from workflows.audit import AuditEventConflict, AuditLedger, EventKind


def fill(ledger: SqlAuditLedger, n: int) -> None:
    for i in range(n):
        ledger.append_sync(step_event(i))
    ledger.publish_head()


def drop_triggers(engine: Engine) -> None:
    """What an attacker with database access does first."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in ("audit_events", "tree_heads"):
                conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
                conn.execute(text(f"DROP TRIGGER {table}_no_replace ON {table}"))
        else:
            for table in ("audit_events", "tree_heads"):
                for verb in ("update", "delete", "replace"):
                    conn.execute(text(f"DROP TRIGGER {table}_no_{verb}"))


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


async def test_is_the_port_and_appends_in_order(ledger: SqlAuditLedger) -> None:
    assert isinstance(ledger, AuditLedger)
    records = [await ledger.append(e) for e in remediation_trail()]
    assert [r.seq for r in records] == list(range(len(records)))
    trail = await ledger.trail("rem-1")
    assert [r.event_id for r in trail] == [r.event_id for r in records]
    assert trail[1].payload["rationale"].startswith("scale payments")
    assert await ledger.trail("nobody") == []


async def test_retry_with_same_content_returns_the_stored_record(ledger: SqlAuditLedger) -> None:
    event = step_event(1)
    first = await ledger.append(event)
    again = await ledger.append(event)
    assert again == first
    assert ledger.size() == 1


async def test_retry_with_different_content_is_a_conflict(ledger: SqlAuditLedger) -> None:
    event = step_event(1)
    await ledger.append(event)
    changed = event.model_copy(update={"payload": {**event.payload, "step_id": "other"}})
    with pytest.raises(LedgerConflictError, match=r"'ev-1' is already recorded at seq 0 .*payload") as caught:
        await ledger.append(changed)
    assert isinstance(caught.value, AuditEventConflict)  # what an activity in workflows/ can catch
    assert ledger.size() == 1


def test_heads_every_n_events_and_on_demand(ledger: SqlAuditLedger) -> None:
    for i in range(12):
        ledger.append_sync(step_event(i))
    assert [h.tree_size for h in ledger.heads()] == [1, 6, 11]
    assert ledger.publish_head().tree_size == 12
    assert ledger.publish_head().tree_size == 12  # nothing new: the same head
    report = ledger.verify()
    assert report.ok and report.verified_size == 12 and report.unsigned_tail == 0


def test_head_after_t_seconds(ledger: SqlAuditLedger) -> None:
    timed = SqlAuditLedger(ledger.engine, ledger.signer, head_every_events=1000, head_every_seconds=0)
    timed.append_sync(step_event(0))
    timed.append_sync(step_event(1))
    assert [h.tree_size for h in timed.heads()] == [1, 2]


def test_query_filters(ledger: SqlAuditLedger) -> None:
    for e in remediation_trail():
        ledger.append_sync(e)
    ledger.append_sync(step_event(99, remediation="rem-2", node="gateway_1"))
    assert len(ledger.query(node="payments")) == 11
    assert [r.event_id for r in ledger.query(node="gateway_1")] == ["ev-99"]
    assert ledger.query(node="gateway") == []
    assert [r.kind for r in ledger.query(actor="user:ann")] == [EventKind.APPROVED]
    assert len(ledger.query(kind=EventKind.STEP_STARTED)) == 2
    first = ledger.query(limit=1)[0]
    window = ledger.query(since=first.time, until=first.time.replace(minute=3))  # until is exclusive
    assert [r.event_id for r in window] == ["rem-1:0:detected", "rem-1:1:proposed", "rem-1:2:policy_evaluated", "ev-99"]
    with pytest.raises(NotFoundError, match="nope"):
        ledger.get("nope")


@pytest.mark.parametrize("table", ["audit_events", "tree_heads"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET time = 'x'", "DELETE FROM {t}"])
def test_triggers_reject_update_and_delete(ledger: SqlAuditLedger, table: str, statement: str) -> None:
    fill(ledger, 3)
    with pytest.raises(exc.DBAPIError, match="append-only"):
        sql(ledger.engine, statement.format(t=table))
    assert ledger.verify().ok


def test_tamper_edited_payload(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    sql(
        ledger.engine,
        "UPDATE audit_events SET payload = REPLACE(payload, :a, :b) WHERE seq = 7",
        a='"to":4',
        b='"to":40',
    )
    report = ledger.verify()
    assert not report.ok
    assert report.first is not None and (report.first.seq, report.first.kind) == (7, "edited")


def test_tamper_edited_row_with_recomputed_leaf_hash(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 7")
    with ledger.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = 7")).one()
    sql(
        ledger.engine,
        "UPDATE audit_events SET leaf_hash = :h WHERE seq = 7",
        h=leaf_hash(entry_bytes(row_entry(row))).hex(),
    )
    report = ledger.verify()
    assert not report.ok and report.first is not None
    # Only the signed head betrays a consistent rewrite: bounded by the last good head (size 6).
    assert (report.first.kind, report.first.seq) == ("head_mismatch", 6)
    assert "between seq 6 and 10" in report.first.message


def test_tamper_missing_row(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "DELETE FROM audit_events WHERE seq = 7")
    first = ledger.verify().first
    assert first is not None and (first.seq, first.kind) == (7, "missing")


def test_tamper_truncated_tail(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "DELETE FROM audit_events WHERE seq >= 18")
    first = ledger.verify().first
    assert first is not None and (first.seq, first.kind) == (18, "missing")


def test_tamper_reordered_rows(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    sql(ledger.engine, "UPDATE audit_events SET seq = -1 WHERE seq = 7")
    sql(ledger.engine, "UPDATE audit_events SET seq = 7 WHERE seq = 8")
    sql(ledger.engine, "UPDATE audit_events SET seq = 8 WHERE seq = -1")
    first = ledger.verify().first
    assert first is not None and (first.seq, first.kind) == (7, "reordered")
    assert "logged at seq 8" in first.message


def test_tamper_forged_head(ledger: SqlAuditLedger) -> None:
    fill(ledger, 20)
    drop_triggers(ledger.engine)
    head = ledger.heads()[1]
    forged = head.checkpoint.replace(head.checkpoint.split("\n")[2], "A" * 43 + "=")
    sql(ledger.engine, "UPDATE tree_heads SET checkpoint = :c WHERE tree_size = :s", c=forged, s=head.tree_size)
    first = ledger.verify().first
    assert first is not None and (first.seq, first.kind) == (head.tree_size, "forged_head")
    assert "signature does not verify" in first.message


def test_tamper_head_signed_by_another_key(ledger: SqlAuditLedger) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    fill(ledger, 20)
    drop_triggers(ledger.engine)
    mallory = NoteSigner(ledger.origin, Ed25519PrivateKey.generate())
    head = ledger.heads()[-1]
    from controller.adapters.audit.canonical import parse_time

    forged = mallory.sign_checkpoint(
        ledger.origin, head.tree_size, bytes.fromhex(head.root_hash), parse_time(head.time)
    )
    sql(ledger.engine, "UPDATE tree_heads SET checkpoint = :c WHERE tree_size = :s", c=forged, s=head.tree_size)
    first = ledger.verify().first
    assert first is not None and first.kind == "forged_head" and "no signature by key" in first.message


def _concurrent(make_engine: Callable[[], Engine], signer: NoteSigner, writers: int, per_writer: int) -> SqlAuditLedger:
    errors: list[BaseException] = []

    def write(w: int) -> None:
        # One ledger (engine, cache, thread lock) per writer: only the database serializes them.
        own = SqlAuditLedger(make_engine(), signer, head_every_events=50)
        try:
            for i in range(per_writer):
                own.append_sync(step_event(i, prefix=f"w{w}", remediation=f"rem-{w}"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return SqlAuditLedger(make_engine(), signer)


def _check_no_gap_no_duplicate(ledger: SqlAuditLedger, total: int) -> None:
    with ledger.engine.connect() as conn:
        seqs = [s for (s,) in conn.execute(text("SELECT seq FROM audit_events ORDER BY seq"))]
        ids = {i for (i,) in conn.execute(text("SELECT event_id FROM audit_events"))}
    assert seqs == list(range(total))
    assert len(ids) == total
    ledger.publish_head()
    report = ledger.verify()
    assert report.ok, report.problems[:3]
    assert report.verified_size == total


@pytest.mark.postgres
def test_eight_writers_by_500_on_postgres(pg_engine_factory: Callable[[], Engine], signer: NoteSigner) -> None:
    ledger = _concurrent(pg_engine_factory, signer, writers=8, per_writer=500)
    _check_no_gap_no_duplicate(ledger, 4000)


def test_concurrent_writers_on_sqlite(sqlite_engine_factory: Callable[[], Engine], signer: NoteSigner) -> None:
    ledger = _concurrent(sqlite_engine_factory, signer, writers=4, per_writer=60)
    _check_no_gap_no_duplicate(ledger, 240)


async def test_head_timer_signs_heads_for_quiet_logs(ledger: SqlAuditLedger) -> None:
    import asyncio

    # A controlled clock: the appends happen "at once" (so neither is due a time-based head, however
    # slow the database is), then time moves on and only the timer can sign the head.
    now = [datetime(2026, 11, 21, 12, 0, tzinfo=UTC)]
    timed = SqlAuditLedger(
        ledger.engine, ledger.signer, head_every_events=1000, head_every_seconds=0.05, clock=lambda: now[0]
    )
    await timed.append(step_event(0))
    await timed.append(step_event(1))
    assert [h.tree_size for h in timed.heads()] == [1]
    now[0] += timedelta(seconds=1)
    task = asyncio.create_task(timed.publish_heads_periodically())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if timed.heads()[-1].tree_size == 2:
            break
    task.cancel()
    assert timed.heads()[-1].tree_size == 2


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_events", "tree_heads"])
def test_postgres_rejects_truncate(pg_engine_factory: Callable[[], Engine], signer: NoteSigner, table: str) -> None:
    ledger = SqlAuditLedger(pg_engine_factory(), signer)
    fill(ledger, 2)
    with pytest.raises(exc.DBAPIError, match="append-only: TRUNCATE"):
        sql(ledger.engine, f"TRUNCATE {table} CASCADE")


def test_kept_checkpoint_catches_an_insider_who_re_signs(ledger: SqlAuditLedger) -> None:
    fill(ledger, 12)
    kept = next(h for h in ledger.heads() if h.tree_size == 6).checkpoint  # the auditor saved this last month
    assert ledger.verify(kept_checkpoints=[kept]).ok
    # An insider holding the signing key rewrites seq 3 and re-signs every head from scratch.
    drop_triggers(ledger.engine)
    sql(ledger.engine, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 3")
    with ledger.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = 3")).one()
    sql(
        ledger.engine,
        "UPDATE audit_events SET leaf_hash = :h WHERE seq = 3",
        h=leaf_hash(entry_bytes(row_entry(row))).hex(),
    )
    sql(ledger.engine, "DELETE FROM tree_heads")
    resigned = SqlAuditLedger(ledger.engine, ledger.signer)
    resigned.publish_head()
    assert resigned.verify().ok  # the rewrite is internally perfect...
    report = resigned.verify(kept_checkpoints=[kept])
    assert not report.ok  # ...but not consistent with what the auditor kept
    assert report.first is not None and (report.first.kind, report.first.seq) == ("head_mismatch", 0)
    assert "signed head at size 6: entries between seq 0 and 5" in report.first.message
