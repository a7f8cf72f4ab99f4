"""The audit ledger: an append-only, RFC 6962-verifiable decision trail in SQL.

Build one with `SqlAuditLedger.from_settings(settings)`; workflows see it through
the `workflows.audit.AuditLedger` port.
"""

from controller.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, load_or_create_key, load_verifier
from controller.audit.export import EXPORT_FORMAT, verify_export, write_export
from controller.audit.ledger import EventConflictError, SqlAuditLedger, TreeHead
from controller.audit.proofs import PROOF_FORMAT, InclusionProof, prove_event, verify_inclusion_proof
from controller.audit.verify import HeadRecord, Problem, VerificationReport, verify_log

__all__ = [
    "EXPORT_FORMAT",
    "PROOF_FORMAT",
    "Checkpoint",
    "EventConflictError",
    "HeadRecord",
    "InclusionProof",
    "NoteSigner",
    "NoteVerifier",
    "Problem",
    "SqlAuditLedger",
    "TreeHead",
    "VerificationReport",
    "load_or_create_key",
    "load_verifier",
    "prove_event",
    "verify_export",
    "verify_inclusion_proof",
    "verify_log",
    "write_export",
]
