"""Export round trip, offline verification with only the public key, and inclusion proofs."""

from __future__ import annotations

import io
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adapters.audit import (
    InclusionProof,
    NoteSigner,
    NoteVerifier,
    SqlAuditLedger,
    prove_event,
    verify_export,
    verify_inclusion_proof,
    write_export,
)
from controller.core.db import create_engine, migrate
from controller.core.errors import LedgerIntegrityError
from tests.controller.adapters.audit.factory import remediation_trail, step_event


def export_of(ledger: SqlAuditLedger) -> bytes:
    out = io.BytesIO()
    write_export(ledger, out)
    return out.getvalue()


def test_export_round_trip(ledger: SqlAuditLedger) -> None:
    for e in remediation_trail():
        ledger.append_sync(e)
    for i in range(9):
        ledger.append_sync(step_event(i))
    data = export_of(ledger)
    lines = data.decode().splitlines()
    assert len(lines) == 1 + 20 + len(ledger.heads())
    verifier = NoteVerifier(ledger.signer.verifier_key)  # what an auditor holds: the public key only
    report = verify_export(data, verifier)
    assert report.ok, report.problems
    assert (report.events, report.verified_size, report.unsigned_tail) == (20, 20, 0)
    assert verify_export(data).ok  # self-consistent with the export's own key too


def test_export_under_another_key_is_refused(ledger: SqlAuditLedger) -> None:
    ledger.append_sync(step_event(0))
    other = NoteSigner(ledger.origin, Ed25519PrivateKey.generate()).verifier()
    report = verify_export(export_of(ledger), other)
    assert not report.ok
    assert report.problems[0].message == "header: the export names a different signing key"


def test_inclusion_proof_round_trip_offline(ledger: SqlAuditLedger) -> None:
    for i in range(13):
        ledger.append_sync(step_event(i))
    proof = prove_event(ledger, "ev-12")  # newer than the last head: a head is signed for it
    assert proof.tree_size == 13
    text = proof.model_dump_json()
    verifier = NoteVerifier(ledger.signer.verifier_key)
    checkpoint = verify_inclusion_proof(InclusionProof.model_validate_json(text), verifier)
    assert checkpoint.size == 13
    for i in range(13):
        verify_inclusion_proof(prove_event(ledger, f"ev-{i}"), verifier)


def test_altered_proofs_fail(ledger: SqlAuditLedger) -> None:
    for i in range(6):
        ledger.append_sync(step_event(i))
    proof = prove_event(ledger, "ev-3")
    verifier = ledger.verifier
    edited = proof.model_copy(update={"entry": {**proof.entry, "actor": "user:mallory"}})
    with pytest.raises(LedgerIntegrityError, match="seq 3: entry content does not match its leaf hash"):
        verify_inclusion_proof(edited, verifier)
    path = [proof.audit_path[0][:-1] + ("0" if proof.audit_path[0][-1] != "0" else "1"), *proof.audit_path[1:]]
    with pytest.raises(LedgerIntegrityError, match="audit path does not lead to the signed root"):
        verify_inclusion_proof(proof.model_copy(update={"audit_path": path}), verifier)
    other = NoteSigner(ledger.origin, Ed25519PrivateKey.generate()).verifier()
    with pytest.raises(LedgerIntegrityError, match="no signature by key"):
        verify_inclusion_proof(proof, other)


@cache
def _sample_export() -> tuple[bytes, str]:
    """A small export with heads in the middle, non-ASCII text and nested payloads (built once)."""
    import tempfile

    home = tempfile.mkdtemp(prefix="twinops-audit-hyp-")
    engine = create_engine(f"sqlite:///{home}/audit.db")
    migrate(engine)
    ledger = SqlAuditLedger(engine, NoteSigner("twinops.test/audit", Ed25519PrivateKey.generate()), head_every_events=4)
    for e in remediation_trail()[:6]:
        ledger.append_sync(e)
    ledger.append_sync(step_event(1, node="zahlungsdienst-ü"))
    data = export_of(ledger)
    engine.dispose()
    return data, ledger.signer.verifier_key


def test_sample_export_verifies() -> None:
    data, key = _sample_export()
    assert verify_export(data, NoteVerifier(key)).ok
    assert "ü".encode() in data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    original, key = _sample_export()
    index = data.draw(st.integers(0, len(original) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[index]), label="byte")
    mutated = original[:index] + bytes([byte]) + original[index + 1 :]
    assert not verify_export(mutated, NoteVerifier(key)).ok
    assert not verify_export(mutated).ok


def test_export_checked_against_kept_checkpoints(ledger: SqlAuditLedger) -> None:
    for i in range(7):
        ledger.append_sync(step_event(i))
    kept = ledger.publish_head().checkpoint
    for i in range(7, 15):
        ledger.append_sync(step_event(i))
    data = export_of(ledger)
    assert verify_export(data, ledger.verifier, kept_checkpoints=[kept]).ok
    other = NoteSigner(ledger.origin, Ed25519PrivateKey.generate())
    foreign = other.sign_checkpoint(ledger.origin, 7, b"\x01" * 32, _now())
    report = verify_export(data, ledger.verifier, kept_checkpoints=[foreign])
    assert not report.ok and report.first is not None and report.first.kind == "forged_head"


def _now():  # a time for a checkpoint that never existed
    from datetime import UTC, datetime

    return datetime.now(UTC)
