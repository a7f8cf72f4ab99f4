"""Signed human decisions: what the approval service signs and a workflow checks before counting.

Anyone who can reach the Temporal frontend can send an Update with any principal in it,
so a principal in an Update proves nothing. The approval service authenticates the
person, then signs the decision with its Ed25519 key; the workflow holds the service's
public key (from its input) and refuses any decision whose signature does not verify
over exactly this proposal, plan, person, text and kind. The check is pure computation,
so it can run in an update validator (deterministic, no I/O); the signature is kept in
the audit event, so an auditor can check it again later (non-repudiation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow

# A compiled extension: the workflow sandbox must pass it through, not re-import it.
with workflow.unsafe.imports_passed_through():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workflows.contracts import Principal, SignedDecision

__all__ = ["MAX_CLOCK_SKEW", "MAX_DECISION_AGE", "DecisionKind", "SignedDecision", "check_decision", "key_fingerprint"]

DecisionKind = Literal["approve", "reject", "cancel"]

MAX_DECISION_AGE = timedelta(minutes=10)
"""A signed decision older than this is refused: a captured one cannot be replayed later."""
MAX_CLOCK_SKEW = timedelta(minutes=1)
"""How far in the future (service clock ahead of Temporal's) an issue time may be."""


def key_fingerprint(public_key_b64: str) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:16]


def check_decision(
    signed: SignedDecision | None,
    *,
    public_key_b64: str,
    kind: DecisionKind,
    proposal_id: str,
    plan_hash: str,
    principal: Principal,
    text: str,
    now: datetime,
) -> None:
    """Raise ValueError naming what is wrong unless `signed` is a fresh, valid decision for exactly this call."""
    if signed is None:
        raise ValueError("unsigned decision refused: decisions must come through the approval service")
    if signed.kind != kind:
        raise ValueError(f"signed decision is a {signed.kind!r}, not a {kind!r}")
    if signed.proposal_id != proposal_id or signed.plan_hash != plan_hash:
        raise ValueError("signed decision is for another proposal or plan")
    if signed.principal != principal:
        raise ValueError(f"signed decision names {signed.principal.id!r}, not {principal.id!r} with these roles")
    if signed.text != text:
        raise ValueError("signed decision's text differs from the update's")
    if signed.issued_at > now + MAX_CLOCK_SKEW:
        raise ValueError(f"signed decision is issued in the future ({signed.issued_at.isoformat()})")
    if now - signed.issued_at > MAX_DECISION_AGE:
        raise ValueError(f"signed decision is stale (issued {signed.issued_at.isoformat()})")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        signature = base64.b64decode(signed.signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"signed decision cannot be checked: {exc}") from None
    try:
        key.verify(signature, signed.signing_bytes())
    except InvalidSignature:
        raise ValueError("bad signature: the decision was not signed by the approval service") from None
