"""The audit ledger: an append-only, RFC 6962-verifiable decision trail in SQL.

Build one with `SqlAuditLedger.from_settings(settings)`; workflows see it through
the `workflows.audit.AuditLedger` port. `LedgerReader.open(settings)` opens an existing
ledger for verification without creating anything. Signed heads are also published to
witnesses (`WitnessDirectory`, `NotifierWitness`) that a database rewrite cannot reach.
"""

from controller.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, load_or_create_key, load_verifier
from controller.audit.export import EXPORT_FORMAT, verify_export, write_export
from controller.audit.ledger import EventConflictError, SqlAuditLedger, TreeHead
from controller.audit.proofs import PROOF_FORMAT, InclusionProof, prove_event, verify_inclusion_proof
from controller.audit.reader import LedgerReader
from controller.audit.signing import CommandSigner
from controller.audit.verify import HeadRecord, KeptCheckpoint, Problem, VerificationReport, verify_log
from controller.audit.witness import CheckpointWitness, NotifierWitness, WitnessDirectory, read_witness_dir

__all__ = [
    "EXPORT_FORMAT",
    "PROOF_FORMAT",
    "Checkpoint",
    "CheckpointWitness",
    "CommandSigner",
    "EventConflictError",
    "HeadRecord",
    "InclusionProof",
    "KeptCheckpoint",
    "LedgerReader",
    "NoteSigner",
    "NoteVerifier",
    "NotifierWitness",
    "Problem",
    "SqlAuditLedger",
    "TreeHead",
    "VerificationReport",
    "WitnessDirectory",
    "load_or_create_key",
    "load_verifier",
    "prove_event",
    "read_witness_dir",
    "verify_export",
    "verify_inclusion_proof",
    "verify_log",
    "write_export",
]
