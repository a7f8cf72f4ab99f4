"""Proposals: the queue, one proposal in full, and the decisions on it (approve, reject, cancel).

Reads need the viewer role; decisions the approver role. Every decision goes through
`ApprovalService` as the caller's principal: it signs the decision and the workflow asks the
approval policy whether it counts. This router only says what the policy said.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from controller.adapters.identity import Role
from controller.adapters.inbox import CLOSED_STATUSES
from controller.api.auth import Caller, require_role
from controller.api.context import context_of
from controller.api.problems import Problem, problem_responses
from controller.api.v1.models import ApprovalAnswer, ApproveBody, CancelAnswer, ReasonBody
from controller.api.views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ProposalDetail,
    ProposalPage,
    list_proposals,
    proposal_detail,
)
from controller.app.approval_words import approval_sentence
from workflows import ApprovalResult
from workflows.ports import InboxEntry

__all__ = ["router"]

router = APIRouter(prefix="/proposals", tags=["proposals"])

Viewer = Annotated[Caller, Depends(require_role(Role.VIEWER))]
Approver = Annotated[Caller, Depends(require_role(Role.APPROVER))]
ProposalId = Annotated[
    str, Path(min_length=1, max_length=200, description="The proposal id, or a prefix of it that is unique.")
]

# What the workflow answers when a decision arrives after another closed the proposal (a race the
# validator could not see): the proposal was decided, so this is a conflict, not an answer.
_TOO_LATE = ("proposal is already decided", "proposal is no longer pending")


@router.get(
    "",
    summary="List proposals, newest first",
    response_model=ProposalPage,
    responses=problem_responses(401, 403, 422),
)
def get_proposals(
    request: Request,
    _: Viewer,
    status: Annotated[
        str | None,
        Query(description="An inbox status (pending, escalated, executing, ...) or open, closed, all; default open."),
    ] = None,
    node: Annotated[str | None, Query(description="Only proposals for this target node.")] = None,
    risk: Annotated[str | None, Query(description="Only this risk level (low, medium, high).")] = None,
    team: Annotated[str | None, Query(description="Only proposals owned by this team.")] = None,
    cursor: Annotated[str | None, Query(description="The next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ProposalPage:
    """A page of the approval inbox (keyset paging: stable while new proposals arrive)."""
    return list_proposals(
        context_of(request), status=status, node=node, risk=risk, team=team, cursor=cursor, limit=limit
    )


@router.get(
    "/{proposal_id}",
    summary="Everything an approver needs about one proposal",
    response_model=ProposalDetail,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_proposal(request: Request, proposal_id: ProposalId, caller: Viewer) -> ProposalDetail:
    """Findings, beliefs, the plan with predicted effects, alternatives, the policy's verdict, approvals, live stage."""
    return await proposal_detail(context_of(request), proposal_id, caller.principal)


async def _decidable(request: Request, proposal_id: str, decision: str) -> InboxEntry:
    """The proposal's entry; a 409 saying what happened when it has already closed."""
    entry = await context_of(request).inbox.aget(proposal_id)
    if entry.status in CLOSED_STATUSES:
        raise Problem(
            409,
            "proposal-not-decidable",
            "The proposal cannot take this decision",
            f"proposal {entry.proposal_id!r} is {entry.status.value}: it can no longer be {decision}",
        )
    return entry


def _answer(entry: InboxEntry, result: ApprovalResult, sentence: str) -> ApprovalAnswer:
    if not result.counted and any(r.startswith(_TOO_LATE) for r in result.reasons):
        raise Problem(
            409, "proposal-not-decidable", "The proposal cannot take this decision", "; ".join(result.reasons)
        )
    return ApprovalAnswer(
        proposal_id=entry.proposal_id,
        counted=result.counted,
        quorum_met=result.quorum_met,
        approvals=result.approvals,
        still_needed=result.still_needed,
        reasons=result.reasons,
        sentence=sentence,
    )


@router.post(
    "/{proposal_id}/approve",
    summary="Approve a proposal",
    response_model=ApprovalAnswer,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve(request: Request, proposal_id: ProposalId, body: ApproveBody, caller: Approver) -> ApprovalAnswer:
    """Approve as the caller; the answer says whether the approval policy counted it and what is still needed."""
    entry = await _decidable(request, proposal_id, "approved")
    result = await context_of(request).approvals.approve(caller.principal, entry.proposal_id, body.comment)
    return _answer(entry, result, approval_sentence(entry.proposal_id, result))


@router.post(
    "/{proposal_id}/reject",
    summary="Reject a proposal (a reason is required)",
    response_model=ApprovalAnswer,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reject(request: Request, proposal_id: ProposalId, body: ReasonBody, caller: Approver) -> ApprovalAnswer:
    """Reject as the caller, with a reason; nothing runs."""
    entry = await _decidable(request, proposal_id, "rejected")
    result = await context_of(request).approvals.reject(caller.principal, entry.proposal_id, body.reason)
    rejected = result.reasons == ["rejected"]
    sentence = (
        f"rejected proposal {entry.proposal_id}: {body.reason}"
        if rejected
        else f"rejection not taken for proposal {entry.proposal_id}: {'; '.join(result.reasons) or 'no reason given'}"
    )
    return _answer(entry, result, sentence)


@router.post(
    "/{proposal_id}/cancel",
    summary="Cancel a remediation (a reason is required); executed steps are compensated",
    response_model=CancelAnswer,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel(request: Request, proposal_id: ProposalId, body: ReasonBody, caller: Approver) -> CancelAnswer:
    """Cancel as the caller, with a reason; the workflow undoes what it ran, in reverse."""
    entry = await _decidable(request, proposal_id, "cancelled")
    await context_of(request).approvals.cancel(caller.principal, entry.proposal_id, body.reason)
    return CancelAnswer(
        proposal_id=entry.proposal_id,
        sentence=f"cancellation of proposal {entry.proposal_id} requested by {caller.principal.id}: {body.reason}",
    )
