"""The proposal page: everything a decision needs, the approve/reject/cancel forms, and the live stage.

The forms post to page routes that call the one `ApprovalService` with the signed-in
principal, exactly as the JSON API does; the buttons are shown to approvers only, but the
service checks the role on every call, so a forged post from a viewer is refused there
(and the CSRF check refuses a post from another site before that). Whether an approval
counts is the approval policy's answer, shown as it came back. After a decision the page's
script polls `/proposals/{id}/live` until the remediation reaches a terminal stage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from controller.adapters.inbox import OPEN_STATUSES
from controller.api import views
from controller.api.auth import Caller
from controller.api.context import context_of
from controller.api.web import svg
from controller.api.web.render import PAGE_TAG, PageCaller, render, security_headers
from controller.app.approval_service import ApprovalRefusedError
from controller.app.approval_words import approval_sentence, entry_requirement, state_requirement
from controller.app.forecast_words import sizing_words
from controller.core.errors import NotFoundError
from workflows.contracts import TERMINAL_STAGES, Stage

__all__ = ["router"]

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

DECIDABLE = frozenset({Stage.AWAITING_APPROVAL.value, Stage.ESCALATED.value})
TERMINAL = frozenset(s.value for s in TERMINAL_STAGES)
MAX_TEXT = 2000
_LIVE_WAIT_SECONDS = 3.0
_STAGE_OF_STATUS = {"pending": Stage.AWAITING_APPROVAL.value}


@dataclass(frozen=True)
class Outcome:
    """What a decision came back with, for the banner at the top of the page."""

    tone: str
    """`ok` (counted, sent), `warn` (not counted), `error` (refused)."""
    headline: str
    sentence: str
    reasons: tuple[str, ...] = ()


def stage_words(stage: str) -> str:
    """A stage as words ('awaiting approval')."""
    return stage.replace("_", " ")


async def _page(
    request: Request,
    who: Caller,
    proposal_id: str,
    *,
    outcome: Outcome | None = None,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    ctx = context_of(request)
    detail = await views.proposal_detail(ctx, proposal_id, who.principal)
    d: dict[str, Any] = detail.model_dump(mode="json")
    context = d.get("context")
    sparks = svg.sparklines(context, svg.predicted_after(d.get("plan")))
    stage = d["stage"]
    return render(
        request,
        "proposal.html.j2",
        {
            "d": d,
            "pid": d["entry"]["proposal_id"],
            "stage": stage,
            "stage_words": stage_words(stage),
            "decidable": stage in DECIDABLE,
            "terminal": stage in TERMINAL,
            "graph": svg.graph_svg(context),
            "legend": svg.legend(),
            "sparks": sparks,
            "target": (context or {}).get("target_utilization"),
            "forecast": _forecast(d.get("forecast")),
            "outcome": outcome,
            "errors": errors or {},
            "typed": typed or {},
            "max_text": MAX_TEXT,
        },
        caller=who,
        status=status,
    )


def _forecast(forecast: dict[str, Any] | None) -> dict[str, Any] | None:
    """The target's forecast for the page: its sentence, what the plan is sized for, the crossing if any."""
    if not forecast:
        return None
    return {"sentence": forecast["sentence"], "sizing": sizing_words(forecast), "crossing_at": forecast["crossing_at"]}


@router.get("/proposals/{proposal_id}", response_class=HTMLResponse)
async def proposal_page(request: Request, proposal_id: str, who: PageCaller) -> Response:
    """One proposal: the ten-second rationale, the picture, the plan, the policy, the approvals."""
    return await _page(request, who, proposal_id)


async def _text(request: Request, name: str) -> str:
    form = await request.form()
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _too_long(name: str, value: str) -> dict[str, str]:
    return {name: f"at most {MAX_TEXT} characters (this has {len(value)})"} if len(value) > MAX_TEXT else {}


@router.post("/proposals/{proposal_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, proposal_id: str, who: PageCaller) -> Response:
    """Approve with an optional comment; the page says whether it counted and what is still needed."""
    comment = await _text(request, "comment")
    if errors := _too_long("comment", comment):
        return await _page(request, who, proposal_id, errors=errors, typed={"comment": comment}, status=422)
    try:
        result = await context_of(request).approvals.approve(who.principal, proposal_id, comment)
    except ApprovalRefusedError as exc:
        return await _refused(request, who, proposal_id, "Approval refused", str(exc))
    entry = await context_of(request).inbox.aget(proposal_id)
    sentence = approval_sentence(entry.proposal_id, result)
    if result.quorum_met:
        outcome = Outcome("ok", "Approved: quorum met", sentence)
    elif result.counted:
        outcome = Outcome("ok", "Your approval counted", sentence, tuple(result.reasons))
    else:
        outcome = Outcome("warn", "Your approval did not count", sentence, tuple(result.reasons))
    return await _page(request, who, proposal_id, outcome=outcome)


@router.post("/proposals/{proposal_id}/reject", response_class=HTMLResponse)
async def reject(request: Request, proposal_id: str, who: PageCaller) -> Response:
    """Reject with a reason (required: it goes into the audit trail)."""
    reason = await _text(request, "reason")
    errors = {"reason": "a rejection needs a reason; it goes into the audit trail"} if not reason else {}
    errors |= _too_long("reason", reason)
    if errors:
        return await _page(request, who, proposal_id, errors=errors, typed={"reason": reason}, status=422)
    try:
        result = await context_of(request).approvals.reject(who.principal, proposal_id, reason)
    except ApprovalRefusedError as exc:
        return await _refused(request, who, proposal_id, "Rejection refused", str(exc))
    if result.reasons == ["rejected"] or not result.reasons:
        outcome = Outcome("ok", "Rejected", f"you rejected the proposal: {reason}")
    else:
        outcome = Outcome("warn", "Rejection not taken", "; ".join(result.reasons))
    return await _page(request, who, proposal_id, outcome=outcome)


@router.post("/proposals/{proposal_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, proposal_id: str, who: PageCaller) -> Response:
    """Cancel a remediation that has not finished, with a reason; executed steps are undone by the workflow."""
    reason = await _text(request, "reason")
    errors = {"cancel_reason": "a cancellation needs a reason; it goes into the audit trail"} if not reason else {}
    errors |= _too_long("cancel_reason", reason)
    if errors:
        return await _page(request, who, proposal_id, errors=errors, typed={"cancel_reason": reason}, status=422)
    try:
        entry = await context_of(request).approvals.cancel(who.principal, proposal_id, reason)
    except ApprovalRefusedError as exc:
        return await _refused(request, who, proposal_id, "Cancellation refused", str(exc))
    outcome = Outcome("ok", "Cancellation requested", f"cancellation of {entry.proposal_id} requested: {reason}")
    return await _page(request, who, proposal_id, outcome=outcome)


async def _refused(request: Request, who: Caller, proposal_id: str, headline: str, why: str) -> HTMLResponse:
    """A 409: the proposal could not take the decision (decided, expired, already approved by you)."""
    return await _page(request, who, proposal_id, outcome=Outcome("error", headline, why), status=409)


@router.get("/proposals/{proposal_id}/live")
async def live(request: Request, proposal_id: str, who: PageCaller) -> Response:
    """The stage and approvals now, small and cheap, for the page's poll."""
    ctx = context_of(request)
    entry = await ctx.inbox.aget(proposal_id)
    state = None
    if entry.status in OPEN_STATUSES:
        try:
            state = await asyncio.wait_for(ctx.approvals.state(who.principal, entry.proposal_id), _LIVE_WAIT_SECONDS)
        except (ApprovalRefusedError, NotFoundError, TimeoutError):
            state = None  # ended between the two reads, or its worker is slow: the inbox says where it is
    stage = state.stage.value if state else _STAGE_OF_STATUS.get(entry.status.value, entry.status.value)
    body = {
        "proposal_id": entry.proposal_id,
        "stage": stage,
        "stage_words": stage_words(stage),
        "terminal": stage in TERMINAL,
        "decidable": stage in DECIDABLE,
        "requirement": state_requirement(state, entry) if state else entry_requirement(entry),
        "approvals": state.approvals if state else entry.approvals,
        "steps_done": len(state.steps_done) if state else None,
    }
    return JSONResponse(body, headers=security_headers())
