"""Inclusion proofs of single events against a signed head, checkable offline with only the public key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.adapters.audit.canonical import entry_bytes
from controller.adapters.audit.checkpoint import Checkpoint, NoteVerifier
from controller.adapters.audit.ledger import SqlAuditLedger
from controller.adapters.audit.merkle import inclusion_proof, leaf_hash, root_from_inclusion
from controller.adapters.audit.reader import LedgerReader, TreeHead
from controller.core.errors import ConflictError, LedgerIntegrityError, NotFoundError

__all__ = ["PROOF_FORMAT", "InclusionProof", "prove_event", "prove_under_latest_head", "verify_inclusion_proof"]

PROOF_FORMAT = "twinops-inclusion-proof/1"


class InclusionProof(BaseModel):
    """One event, its RFC 6962 audit path, and the signed checkpoint the path leads to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = PROOF_FORMAT
    entry: dict[str, Any] = Field(description="The logged entry (all hashed fields plus leaf_hash).")
    leaf_index: int
    tree_size: int
    audit_path: list[str] = Field(description="Hex sibling hashes, leaf side first (RFC 6962 §2.1.1).")
    checkpoint: str


def prove_event(ledger: SqlAuditLedger, event_id: str, *, leaves: list[bytes] | None = None) -> InclusionProof:
    """Proof that `event_id` is in the log under the latest signed head (signing a new head if none covers it).

    `leaves` lets a caller proving many events at one head load the leaf hashes once.
    """
    record = ledger.get(event_id)
    head = ledger.latest_head()
    if head is None or head.tree_size <= record.seq:
        head = ledger.publish_head()
    return _proof(ledger, event_id, record.seq, head, leaves)


def prove_under_latest_head(reader: LedgerReader, event_id: str) -> InclusionProof:
    """Proof that `event_id` is under the newest signed head, signing nothing (for readers such as the API).

    NotFoundError when the event is unknown or no head has been signed yet; ConflictError when
    the event is newer than the newest head (the writers sign one within the head interval).
    """
    record = reader.get(event_id)
    head = reader.latest_head()
    if head is None:
        raise NotFoundError("the audit log has no signed head yet; the writers sign one within the head interval")
    if head.tree_size <= record.seq:
        raise ConflictError(
            f"audit event {event_id!r} (seq {record.seq}) is newer than the latest signed head (size "
            f"{head.tree_size}); a head is pending, ask again after the next one is signed"
        )
    return _proof(reader, event_id, record.seq, head, None)


def _proof(reader: LedgerReader, event_id: str, seq: int, head: TreeHead, leaves: list[bytes] | None) -> InclusionProof:
    hashes = leaves if leaves is not None and len(leaves) == head.tree_size else reader.leaf_hashes(head.tree_size)
    path = inclusion_proof(hashes, seq, head.tree_size)
    return InclusionProof(
        entry=reader.entry(event_id),
        leaf_index=seq,
        tree_size=head.tree_size,
        audit_path=[p.hex() for p in path],
        checkpoint=head.checkpoint,
    )


def verify_inclusion_proof(proof: InclusionProof, verifier: NoteVerifier) -> Checkpoint:
    """Check the checkpoint's signature, the entry's leaf hash and the audit path; raise naming what fails."""
    if proof.format != PROOF_FORMAT:
        raise LedgerIntegrityError(f"proof: unknown format {proof.format!r}")
    checkpoint = verifier.verify(proof.checkpoint)
    if checkpoint.size != proof.tree_size:
        raise LedgerIntegrityError(f"proof: tree size {proof.tree_size} but the checkpoint signs {checkpoint.size}")
    if proof.entry.get("seq") != proof.leaf_index:
        raise LedgerIntegrityError(f"proof: entry seq {proof.entry.get('seq')} is not leaf index {proof.leaf_index}")
    try:
        leaf = leaf_hash(entry_bytes(proof.entry))
        path = [bytes.fromhex(p) for p in proof.audit_path]
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerIntegrityError(f"proof: unreadable entry or path ({exc})") from None
    if leaf.hex() != proof.entry.get("leaf_hash"):
        raise LedgerIntegrityError(f"proof: seq {proof.leaf_index}: entry content does not match its leaf hash")
    if root_from_inclusion(leaf, proof.leaf_index, proof.tree_size, path) != checkpoint.root:
        raise LedgerIntegrityError(
            f"proof: seq {proof.leaf_index}: audit path does not lead to the signed root at size {proof.tree_size}"
        )
    return checkpoint
