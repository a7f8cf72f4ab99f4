"""The audit ledger: an append-only, RFC 6962-verifiable decision trail in SQL.

Build one with `SqlAuditLedger.from_settings(settings)`; workflows see it through
the `workflows.audit.AuditLedger` port. `LedgerReader.open(settings)` opens an existing
ledger for verification without creating anything. Signed heads are also published to
witnesses (`WitnessDirectory`, `NotifierWitness`) that a database rewrite cannot reach.
"""

from controller.adapters.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, load_or_create_key, load_verifier
from controller.adapters.audit.export import EXPORT_FORMAT, verify_export, write_export
from controller.adapters.audit.ledger import EventConflictError, SqlAuditLedger, TreeHead
from controller.adapters.audit.proofs import PROOF_FORMAT, InclusionProof, prove_event, verify_inclusion_proof
from controller.adapters.audit.reader import LedgerReader
from controller.adapters.audit.signing import CommandSigner
from controller.adapters.audit.verify import HeadRecord, KeptCheckpoint, Problem, VerificationReport, verify_log
from controller.adapters.audit.witness import CheckpointWitness, NotifierWitness, WitnessDirectory, read_witness_dir

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
