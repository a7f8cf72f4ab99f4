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

from workflows.contracts import PreapprovalGrant, Principal, SignedDecision

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_DECISION_AGE",
    "MAX_PREAPPROVAL_WINDOW",
    "PREAPPROVAL_EARLY",
    "DecisionKind",
    "SignedDecision",
    "check_decision",
    "check_preapproval",
    "key_fingerprint",
]

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
    _verify(signed, public_key_b64)


def _verify(signed: SignedDecision, public_key_b64: str) -> None:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        signature = base64.b64decode(signed.signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"signed decision cannot be checked: {exc}") from None
    try:
        key.verify(signature, signed.signing_bytes())
    except InvalidSignature:
        raise ValueError("bad signature: the decision was not signed by the approval service") from None


PREAPPROVAL_EARLY = timedelta(minutes=15)
"""A run that starts this long before a pre-approval's `run_at` is still the run it was meant for."""
MAX_PREAPPROVAL_WINDOW = timedelta(days=7)
"""The longest a pre-approval may stand, from its signing to its expiry."""


def check_preapproval(
    grant: PreapprovalGrant,
    *,
    public_key_b64: str,
    playbook: str,
    version: int,
    playbook_digest: str,
    started_at: datetime,
) -> tuple[list[SignedDecision], list[str]]:
    """The approvals of `grant` that hold for a run of this playbook started at `started_at`, and why the others do not.

    Pure (runs in workflow code). The grant must be for exactly this playbook, version and content, the run
    must start in its window, and each approval must be an approve the approval service signed over the
    grant's binding, issued before the run and at most `MAX_PREAPPROVAL_WINDOW` before the expiry.
    """
    if (grant.playbook, grant.version, grant.playbook_digest) != (playbook, version, playbook_digest):
        return [], [f"pre-approval {grant.id} is for {grant.playbook} v{grant.version} as it was then, not this run's"]
    if not grant.run_at - PREAPPROVAL_EARLY <= started_at < grant.expires_at:
        return [], [
            f"pre-approval {grant.id} covers runs from {(grant.run_at - PREAPPROVAL_EARLY).isoformat()} to "
            f"{grant.expires_at.isoformat()}; this one started {started_at.isoformat()}"
        ]
    valid: list[SignedDecision] = []
    problems: list[str] = []
    binding = grant.binding()
    for signed in grant.approvals:
        who = signed.principal.id
        if signed.kind != "approve" or signed.proposal_id != grant.subject or signed.plan_hash != binding:
            problems.append(f"{who}'s pre-approval is not an approval of {grant.id} as it stands")
        elif signed.issued_at > started_at + MAX_CLOCK_SKEW:
            problems.append(f"{who}'s pre-approval was signed after the run started")
        elif grant.expires_at - signed.issued_at > MAX_PREAPPROVAL_WINDOW:
            problems.append(f"{who}'s pre-approval stands longer than {MAX_PREAPPROVAL_WINDOW.days} days")
        else:
            try:
                _verify(signed, public_key_b64)
            except ValueError as exc:
                problems.append(f"{who}'s pre-approval: {exc}")
                continue
            valid.append(signed)
    return valid, problems
