"""The audit trail: a remediation's events, the newest signed head, an event's inclusion proof.

Read-only: this process signs nothing (the writers sign heads on their schedule), so a proof
is always against a head anyone may already hold, and a reader cannot make the log grow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from controller.adapters.audit.proofs import InclusionProof, prove_under_latest_head
from controller.adapters.identity import Role
from controller.api.auth import Caller, require_role
from controller.api.context import context_of
from controller.api.problems import problem_responses
from controller.api.v1.models import AuditHead, Trail
from controller.core.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(tags=["audit"])

Viewer = Annotated[Caller, Depends(require_role(Role.VIEWER))]


@router.get(
    "/remediations/{remediation_id}/trail",
    summary="Every audit event of one remediation, in log order",
    response_model=Trail,
    responses=problem_responses(401, 403, 404, 422, 503),
)
def get_trail(
    request: Request,
    remediation_id: Annotated[str, Path(min_length=1, max_length=200, description="The remediation (proposal) id.")],
    _: Viewer,
) -> Trail:
    """What was believed, planned, decided and done, as the ledger recorded it."""
    events = context_of(request).ledger().trail_sync(remediation_id)
    if not events:
        raise NotFoundError(f"remediation {remediation_id!r}: no audit events")
    return Trail(remediation_id=remediation_id, events=events)


@router.get(
    "/audit/head",
    summary="The newest signed tree head of the audit log",
    response_model=AuditHead,
    responses=problem_responses(401, 403, 404, 503),
)
def get_head(request: Request, _: Viewer) -> AuditHead:
    """The signed checkpoint and the key that verifies it; keep it to check later proofs against."""
    ledger = context_of(request).ledger()
    head = ledger.latest_head()
    if head is None:
        raise NotFoundError("the audit log has no signed head yet; the writers sign one within the head interval")
    return AuditHead(
        origin=ledger.origin,
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        time=head.time,
        checkpoint=head.checkpoint,
        verifier_key=ledger.verifier.verifier_key,
    )


@router.get(
    "/audit/proofs/{event_id:path}",
    summary="Proof that one event is in the log under the newest signed head",
    response_model=InclusionProof,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def get_proof(
    request: Request,
    event_id: Annotated[str, Path(min_length=1, max_length=200, description="The event id (it contains slashes).")],
    _: Viewer,
) -> InclusionProof:
    """The event, its RFC 6962 audit path and the signed checkpoint; 409 while no head covers it yet."""
    return prove_under_latest_head(context_of(request).ledger(), event_id)
