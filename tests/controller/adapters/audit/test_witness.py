"""Signed heads are published outside the database, and a rewritten ledger is caught against those copies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs
from typer.testing import CliRunner

from controller.adapters.audit import (
    KeptCheckpoint,
    LedgerReader,
    NotifierWitness,
    SqlAuditLedger,
    WitnessDirectory,
    read_witness_dir,
    verify_export,
)
from controller.adapters.audit.canonical import entry_bytes
from controller.adapters.audit.ledger import row_entry
from controller.adapters.audit.merkle import leaf_hash
from controller.adapters.notifiers import LogNotifier
from controller.cli.audit import app
from controller.core.errors import AuditError, LedgerIntegrityError
from controller.core.settings import Settings
from tests.controller.adapters.audit.factory import step_event
from tests.controller.adapters.audit.test_coverage import export_lines, reassembled
from tests.controller.adapters.audit.test_ledger import drop_triggers, sql


def flat(text: str) -> str:
    """Text without whitespace: rich wraps long lines at 80 columns under CliRunner."""
    return "".join(text.split())


def witnessed(ledger: SqlAuditLedger, directory: Path) -> SqlAuditLedger:
    return SqlAuditLedger(
        ledger.engine,
        ledger.signer,
        head_every_events=5,
        head_every_seconds=3600,
        witnesses=[WitnessDirectory(directory)],
    )


def rewrite_and_re_sign(ledger: SqlAuditLedger, seq: int) -> SqlAuditLedger:
    """An insider with the key and the database: edit a row, fix its leaf hash, replace every head."""
    drop_triggers(ledger.engine)
    sql(ledger.engine, "UPDATE audit_events SET actor = 'user:mallory' WHERE seq = :s", s=seq)
    with ledger.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).one()
    sql(
        ledger.engine,
        "UPDATE audit_events SET leaf_hash = :h WHERE seq = :s",
        h=leaf_hash(entry_bytes(row_entry(row))).hex(),
        s=seq,
    )
    sql(ledger.engine, "DELETE FROM tree_heads")
    resigned = SqlAuditLedger(ledger.engine, ledger.signer, head_every_events=5, head_every_seconds=3600)
    resigned.publish_head()
    return resigned


def test_every_signed_head_is_written_once(ledger: SqlAuditLedger, tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    log = witnessed(ledger, directory)
    for i in range(12):
        log.append_sync(step_event(i))
    log.publish_head()
    log.publish_head()  # nothing new: nothing written again
    files = sorted(p.name for p in directory.iterdir())
    assert files == [f"{size:012d}.checkpoint" for size in (1, 6, 11, 12)]
    assert [k.text for k in read_witness_dir(directory)] == [h.checkpoint for h in log.heads()]


def test_a_rewritten_ledger_is_caught_against_the_witness(ledger: SqlAuditLedger, tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    log = witnessed(ledger, directory)
    for i in range(12):
        log.append_sync(step_event(i))
    log.publish_head()
    resigned = rewrite_and_re_sign(log, 3)
    assert resigned.verify().ok  # internally perfect: only the witness knows better
    report = resigned.verify(kept_checkpoints=read_witness_dir(directory))
    assert not report.ok and report.first is not None
    assert report.first.kind == "head_mismatch"
    assert report.first.message.startswith(f"kept checkpoint {directory / '000000000006.checkpoint'}: ")
    named = {p.message.split(":")[0] for p in report.problems}
    assert named == {f"kept checkpoint {directory / f'{n:012d}.checkpoint'}" for n in (6, 11, 12)}


def test_an_unreachable_witness_does_not_stop_appends_and_catches_up(ledger: SqlAuditLedger, tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    directory.write_text("a file where the directory should be")  # the mount is gone
    log = witnessed(ledger, directory)
    with capture_logs() as logs:
        for i in range(6):
            log.append_sync(step_event(i))  # heads at 1 and 6, both committed
    assert [h.tree_size for h in log.heads()] == [1, 6]
    failures = [e["event"] for e in logs if e["log_level"] == "error"]
    assert failures == ["audit.witness_failed"] * 2  # tried once per head signed, not again on every append
    directory.unlink()  # the mount is back
    assert log.publish_head_if_due() is None  # the timer's tick: nothing new to sign, the backlog goes out
    assert [k.text for k in read_witness_dir(directory)] == [h.checkpoint for h in log.heads()]


def test_a_witness_never_takes_a_second_checkpoint_for_a_size(ledger: SqlAuditLedger, tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    log = witnessed(ledger, directory)
    for i in range(6):
        log.append_sync(step_event(i))
    kept = (directory / "000000000006.checkpoint").read_text()
    resigned = rewrite_and_re_sign(log, 3)
    forged = next(h for h in resigned.heads() if h.tree_size == 6)
    with pytest.raises(LedgerIntegrityError, match="already keeps a different checkpoint"):
        WitnessDirectory(directory).publish(forged.checkpoint)
    assert (directory / "000000000006.checkpoint").read_text() == kept
    # The ledger logs the refusal instead of failing an append that is already committed.
    rewriter = witnessed(resigned, directory)
    sql(resigned.engine, "DELETE FROM tree_heads")
    with capture_logs() as logs:
        rewriter.publish_head()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["audit.witness_conflict"]


def test_the_export_is_checked_against_the_witness_too(ledger: SqlAuditLedger, tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    log = witnessed(ledger, directory)
    for i in range(12):
        log.append_sync(step_event(i))
    kept = read_witness_dir(directory)
    good = reassembled(export_lines(log))
    assert verify_export(good, log.verifier, kept_checkpoints=kept).ok
    resigned = rewrite_and_re_sign(log, 3)
    report = verify_export(reassembled(export_lines(resigned)), log.verifier, kept_checkpoints=kept)
    assert report.first is not None and str(directory / "000000000006.checkpoint") in report.first.message


def test_cli_verify_witness_names_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_AUDIT_SIGNING_KEY", "TWINOPS_AUDIT_PUBLIC_KEY", "TWINOPS_MODE"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "auditor" / "witness"
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TWINOPS_AUDIT_WITNESS_DIR", str(directory))
    monkeypatch.setenv("TWINOPS_AUDIT_HEAD_EVERY_EVENTS", "5")
    log = SqlAuditLedger.from_settings(Settings())
    for i in range(12):
        log.append_sync(step_event(i))
    log.publish_head()
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "--witness", str(directory)])
    assert result.exit_code == 0 and flat("matches 4 kept checkpoint(s)") in flat(result.output)
    rewrite_and_re_sign(log, 3)
    log.engine.dispose()
    monkeypatch.delenv("TWINOPS_AUDIT_WITNESS_DIR")
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0  # the database alone cannot tell
    result = runner.invoke(app, ["verify", "--witness", str(directory)])
    assert result.exit_code == 1
    assert flat(f"kept checkpoint {directory / '000000000006.checkpoint'}: the log's first 6 entries") in flat(
        result.output
    )
    result = runner.invoke(app, ["verify", "--witness", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and flat(f"witness directory {tmp_path / 'nowhere'}: does not exist") in flat(
        result.output
    )
    assert not (tmp_path / "nowhere").exists()


async def test_heads_go_out_through_the_notifier(ledger: SqlAuditLedger) -> None:
    log = SqlAuditLedger(ledger.engine, ledger.signer, head_every_events=5, head_every_seconds=3600)
    with capture_logs() as logs, log.witnessed_by(NotifierWitness(LogNotifier(), asyncio.get_running_loop())):
        for i in range(6):
            await log.append(step_event(i))
        for _ in range(20):
            await asyncio.sleep(0)
    sent = [e for e in logs if e["event"] == "notification" and e["kind"] == "audit_checkpoint"]
    assert [e["text"] for e in sent] == [h.checkpoint for h in log.heads()]
    assert sent[-1]["fields"]["tree size"] == "6"


def test_missing_witness_dir_is_an_error() -> None:
    with pytest.raises(AuditError, match="witness directory /nonexistent/witness: does not exist"):
        read_witness_dir(Path("/nonexistent/witness"))


def test_kept_checkpoint_label_reaches_the_reader(ledger: SqlAuditLedger) -> None:
    for i in range(6):
        ledger.append_sync(step_event(i))
    reader = LedgerReader(ledger.engine, ledger.verifier)
    report = reader.verify(kept_checkpoints=[KeptCheckpoint("not a checkpoint", "mail from 2026-11-02")])
    assert report.first is not None and report.first.message.startswith("kept checkpoint mail from 2026-11-02: ")
