"""The read model of the approval queue, shared by the JSON API and the web pages.

`list_proposals` pages the inbox by (created_at, proposal_id), newest first, with an opaque
cursor; `queue` orders it the way an approver works it (waiting for a human first, the
riskiest and the soonest due first); `proposal_detail` joins an inbox entry with its
workflow's live state and with what the audit trail recorded when it was proposed and
evaluated, so one page shows everything a decision needs. Every filter and order is SQL on
indexed columns: a queue of a thousand proposals lists in milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import Select, and_, case, or_, select
from temporalio.service import RPCError

from controller.adapters.inbox import OPEN_STATUSES, approval_inbox, entry_of
from controller.api.problems import Problem
from controller.app.approval_service import ApprovalRefusedError
from controller.app.approval_words import entry_requirement, state_requirement
from controller.app.forecast_words import forecast_json, recorded_outlook
from controller.core.errors import AuditError, NotFoundError, RuntimeUnavailableError
from twin.actions import Action, describe
from workflows import RemediationState
from workflows.audit import AuditRecord, EventKind
from workflows.contracts import Principal
from workflows.ports import InboxEntry, InboxStatus

if TYPE_CHECKING:
    from controller.api.context import ApiContext

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AlternativeView",
    "ApprovalsView",
    "ContextEdge",
    "ContextNode",
    "ForecastView",
    "NodePrediction",
    "PlanStepView",
    "PlanView",
    "PolicyView",
    "ProposalContext",
    "ProposalDetail",
    "ProposalPage",
    "ProposalSummary",
    "StepView",
    "decode_cursor",
    "encode_cursor",
    "list_proposals",
    "proposal_detail",
    "queue",
    "summary_of",
]

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
STATUS_WORDS = ("open", "closed", "all")
"""Besides an InboxStatus value, `status` may be one of these."""
_AWAITING = (InboxStatus.PENDING.value, InboxStatus.ESCALATED.value)
_RISK_ORDER = ("critical", "high", "medium", "low")
# The live state is worth a short wait, not a stuck page: a workflow whose worker is down answers nothing.
_STATE_WAIT_SECONDS = 3.0
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)
_T = approval_inbox.c


# ---- the models ---------------------------------------------------------------------------


class ProposalSummary(InboxEntry):
    """A queue row: the inbox entry, what approval still requires in words, and its age."""

    requirement: str = Field(description="What the approval policy requires and what is still needed, in words.")
    age_seconds: float = Field(description="Seconds since the proposal entered the queue.")


class ProposalPage(BaseModel):
    """One page of proposals, newest first; `next_cursor` fetches the next (null on the last page)."""

    items: list[ProposalSummary]
    next_cursor: str | None = None


class PlanStepView(BaseModel):
    """One step of the plan: the action, in words, with what undoes it."""

    index: int
    action: Action
    words: str = Field(description="The action as a sentence (`scale checkout -> 8`).")
    description: str = ""
    compensation: Action | None = None
    compensation_words: str | None = None
    blast_radius: float | None = None
    cost_per_hour: float | None = None


class NodePrediction(BaseModel):
    """The what-if's before and after for one node the plan affects."""

    node: str
    replicas_before: int | None = None
    replicas_after: int | None = None
    utilization_before: float | None = None
    utilization_after: float | None = None
    target_utilization: float | None = None
    demand_rps: float | None = None
    shed_rps: float | None = None


class PlanView(BaseModel):
    """The chosen plan: steps, the predicted effect per node, the goals it meets or misses."""

    name: str = ""
    summary: str = ""
    steps: list[PlanStepView] = Field(default_factory=list)
    predicted: dict[str, NodePrediction] = Field(default_factory=dict)
    goals: list[dict[str, Any]] = Field(default_factory=list)
    cost_per_hour: float | None = None
    risk: float | None = None
    plan_hash: str = ""


class AlternativeView(BaseModel):
    """A plan the agent considered and did not choose, and why it lost."""

    name: str
    summary: str = ""
    steps: list[str] = Field(default_factory=list, description="Its actions in words.")
    cost_per_hour: float | None = None
    risk: float | None = None
    unmet: list[str] = Field(default_factory=list)
    lost_because: str = ""


class PolicyView(BaseModel):
    """The safety policy's last verdict on the proposal and exactly which bundle gave it."""

    allow: bool
    risk: str | None = None
    reasons: list[dict[str, Any]] = Field(default_factory=list, description="Deny reasons: code, msg, details.")
    required_approvals: int | None = None
    approver_groups: list[str] = Field(default_factory=list)
    auto_approve: bool | None = None
    bundle_revision: str = ""
    bundle_sha256: str = ""
    engine: str | None = None
    phase: str = Field("proposal", description="`proposal`, or `execution` for the check at the moment of action.")
    evaluated_at: datetime


class ApprovalsView(BaseModel):
    """Approvals so far and what the approval policy still requires."""

    required: int
    given: list[str]
    groups: list[str]
    pending: list[str] = Field(description="The approval policy's words on what the quorum still lacks.")
    still_needed: int = Field(description="Approvals still needed, as the approval policy counts them.")


class StepView(BaseModel):
    """One executed step."""

    index: int
    action: Action | None = None
    words: str
    applied: bool
    compensation: Action | None = None
    compensation_words: str | None = None


class ContextNode(BaseModel):
    """A node of the affected part of the twin's graph, as the proposal saw it."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str = ""
    demand_utilization: float | None = None
    replicas: int | None = None
    constraint: bool = False
    hidden: bool = False


class ContextEdge(BaseModel):
    """An edge of that graph: the share of the source's traffic that reaches the target."""

    model_config = ConfigDict(extra="allow")

    source: str
    target: str
    ratio: float | None = None


class ProposalContext(BaseModel):
    """The graph around the target and the demand utilization history (proposals recorded since 0.3)."""

    model_config = ConfigDict(extra="allow")

    nodes: list[ContextNode] = Field(default_factory=list)
    edges: list[ContextEdge] = Field(default_factory=list)
    history: dict[str, list[tuple[datetime, float | None]]] = Field(
        default_factory=dict, description="Per node, [time, demand utilization] oldest first; null marks a gap."
    )
    target_utilization: float | None = None


class ForecastView(BaseModel):
    """The demand forecast the plan was sized from: the target's, when the agent had a seasonal one."""

    method: str = Field(description="`seasonal_daily` or `seasonal_weekly` (same time of day, or of the week).")
    days_of_history: float = Field(description="Days of demand history the forecast was made from.")
    band: float = Field(description="Relative half-width of the uncertainty band (0.06 = +/- 6%).")
    window_seconds: float = Field(
        description="The planning window: readiness delay + cool-down (capacity is sized to hold through it)."
    )
    current_rps: float = Field(description="Demand believed when the proposal was made.")
    peak_rps: float = Field(description="Expected demand at the window's peak.")
    peak_upper_rps: float = Field(description="The band's upper edge at that peak.")
    peak_at: datetime
    planning_rps: float = Field(description="Demand capacity is sized for: the upper band's peak over the window.")
    crossing_at: datetime | None = Field(
        None, description="When the upper band crosses the target at current capacity; null when not in the window."
    )
    sentence: str = Field(description="The forecast in words, as the rationale names it.")


class ProposalDetail(BaseModel):
    """Everything an approver needs to decide on one proposal."""

    entry: InboxEntry
    state: RemediationState | None = Field(description="The workflow's live state; null when it has ended or is gone.")
    stage: str
    requirement: str
    rationale: str = ""
    forecast: ForecastView | None = Field(
        None, description="The target's demand forecast the plan was sized from; null when planned without one."
    )
    intent: str | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    beliefs: list[dict[str, Any]] = Field(default_factory=list, description="Per node: what was believed, evidence.")
    plan: PlanView | None = None
    alternatives: list[AlternativeView] = Field(default_factory=list)
    unmet: list[str] = Field(default_factory=list, description="Goals the plan leaves unmet, as sentences.")
    policy: PolicyView | None = None
    approvals: ApprovalsView
    deadline: datetime | None = None
    steps_done: list[StepView] = Field(default_factory=list)
    context: ProposalContext | None = None
    trail_url: str


# ---- the list -----------------------------------------------------------------------------


def summary_of(entry: InboxEntry, now: datetime | None = None) -> ProposalSummary:
    """A queue row for `entry`."""
    age = ((now or datetime.now(UTC)) - entry.created_at).total_seconds()
    return ProposalSummary(
        **entry.model_dump(), requirement=entry_requirement(entry), age_seconds=round(max(0.0, age), 3)
    )


def _statuses(status: str | None) -> list[str]:
    wanted = (status or "open").strip().lower()
    if wanted == "open":
        return sorted(s.value for s in OPEN_STATUSES)
    if wanted == "closed":
        return sorted(s.value for s in InboxStatus if s not in OPEN_STATUSES)
    if wanted == "all":
        return [s.value for s in InboxStatus]
    try:
        return [InboxStatus(wanted).value]
    except ValueError:
        allowed = ", ".join([*STATUS_WORDS, *(s.value for s in InboxStatus)])
        raise Problem(
            422,
            "invalid-request",
            "Invalid request",
            f"unknown status {status!r}",
            invalid=[("query.status", f"must be one of {allowed}")],
        ) from None


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(
            422,
            "invalid-request",
            "Invalid request",
            f"limit {limit} is out of range",
            invalid=[("query.limit", f"must be between 1 and {MAX_LIMIT}")],
        )
    return limit


def _filtered(query: Select[Any], statuses: list[str], node: str | None, risk: str | None, team: str | None) -> Any:
    query = query.where(_T.status.in_(statuses))
    if node:
        query = query.where(_T.target == node)
    if risk:
        query = query.where(_T.risk == risk)
    if team:
        query = query.where(_T.team == team)
    return query


def encode_cursor(created_at: datetime, proposal_id: str) -> str:
    """The opaque cursor that continues after (created_at, proposal_id)."""
    raw = json.dumps({"c": created_at.astimezone(UTC).isoformat(), "p": proposal_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; a 422 naming `cursor` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created = datetime.fromisoformat(data["c"])
        proposal_id = data["p"]
        if created.tzinfo is None or not isinstance(proposal_id, str):
            raise ValueError("incomplete")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise Problem(
            422,
            "invalid-request",
            "Invalid request",
            "the cursor is not one this API returned",
            invalid=[("query.cursor", "not a cursor from next_cursor; start again without it")],
        ) from None
    return created, proposal_id


def list_proposals(
    ctx: ApiContext,
    *,
    status: str | None = None,
    node: str | None = None,
    risk: str | None = None,
    team: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ProposalPage:
    """One page of proposals, newest first (keyset on created_at, proposal_id; stable while rows arrive)."""
    query = _filtered(select(approval_inbox), _statuses(status), node, risk, team)
    size = _limit(limit)
    if cursor:
        created, proposal_id = decode_cursor(cursor)
        query = query.where(or_(_T.created_at < created, and_(_T.created_at == created, _T.proposal_id < proposal_id)))
    query = query.order_by(_T.created_at.desc(), _T.proposal_id.desc()).limit(size + 1)
    with ctx.engine.connect() as conn:
        entries = [entry_of(row) for row in conn.execute(query)]
    more = len(entries) > size
    entries = entries[:size]
    now = datetime.now(UTC)
    next_cursor = encode_cursor(entries[-1].created_at, entries[-1].proposal_id) if more else None
    return ProposalPage(items=[summary_of(e, now) for e in entries], next_cursor=next_cursor)


def queue(
    ctx: ApiContext,
    *,
    status: str | None = None,
    node: str | None = None,
    risk: str | None = None,
    team: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[ProposalSummary]:
    """The queue as an approver works it: waiting for a human first (riskiest, then soonest due), then newest."""
    statuses = _statuses(status)
    size = _limit(limit)
    awaiting = [s for s in statuses if s in _AWAITING]
    rest = [s for s in statuses if s not in _AWAITING]
    risk_rank = case({name: rank for rank, name in enumerate(_RISK_ORDER)}, value=_T.risk, else_=len(_RISK_ORDER))
    entries: list[InboxEntry] = []
    with ctx.engine.connect() as conn:
        if awaiting:
            first = _filtered(select(approval_inbox), awaiting, node, risk, team).order_by(
                risk_rank, _T.deadline.is_(None), _T.deadline, _T.created_at.desc(), _T.proposal_id.desc()
            )
            entries += [entry_of(row) for row in conn.execute(first.limit(size))]
        if rest and len(entries) < size:
            then = _filtered(select(approval_inbox), rest, node, risk, team).order_by(
                _T.created_at.desc(), _T.proposal_id.desc()
            )
            entries += [entry_of(row) for row in conn.execute(then.limit(size - len(entries)))]
    now = datetime.now(UTC)
    return [summary_of(e, now) for e in entries]


# ---- one proposal -------------------------------------------------------------------------


_STAGE_OF_STATUS = {InboxStatus.PENDING: "awaiting_approval"}


async def _live_state(ctx: ApiContext, entry: InboxEntry, principal: Principal) -> RemediationState | None:
    """The workflow's state while it runs; None once it has ended, is gone, or Temporal does not answer in time."""
    if entry.status not in OPEN_STATUSES:
        return None
    try:
        return await asyncio.wait_for(ctx.approvals.state(principal, entry.proposal_id), _STATE_WAIT_SECONDS)
    except (NotFoundError, ApprovalRefusedError, RuntimeUnavailableError, RPCError, TimeoutError) as exc:
        log.info("api.state_unavailable", proposal_id=entry.proposal_id, reason=str(exc) or type(exc).__name__)
        return None


def _trail(ctx: ApiContext, proposal_id: str) -> list[AuditRecord]:
    try:
        return ctx.ledger().trail_sync(proposal_id)
    except AuditError as exc:
        # The proposal is still worth showing from the inbox and the workflow; the trail says why it is thin.
        log.warning("api.trail_unavailable", proposal_id=proposal_id, error=str(exc))
        return []


async def proposal_detail(ctx: ApiContext, proposal_id: str, principal: Principal) -> ProposalDetail:
    """Everything about one proposal (a unique id prefix will do); NotFoundError when none or several match."""
    entry = await ctx.inbox.aget(proposal_id)
    state, trail = await asyncio.gather(
        _live_state(ctx, entry, principal), asyncio.to_thread(_trail, ctx, entry.proposal_id)
    )
    # One proposal id may have run more than once (the agent re-proposes the same plan): the last run counts.
    proposed_at = max((i for i, r in enumerate(trail) if r.kind is EventKind.PROPOSED), default=None)
    run = trail[proposed_at:] if proposed_at is not None else trail
    proposed = run[0].payload if proposed_at is not None else {}
    intention = _dict(proposed.get("intention"))
    plan = _plan(_dict(proposed.get("plan")), _dict(proposed.get("predicted"))) if proposed else None
    beliefs = _dicts(_dict(proposed.get("beliefs")).get("nodes"))
    return ProposalDetail(
        entry=entry,
        state=state,
        stage=state.stage.value if state else _STAGE_OF_STATUS.get(entry.status, entry.status.value),
        requirement=state_requirement(state, entry) if state else entry_requirement(entry),
        rationale=str(proposed.get("rationale", "")),
        forecast=_forecast(beliefs, entry.target),
        intent=str(intention["intent"]) if "intent" in intention else None,
        findings=_dicts(intention.get("findings")),
        beliefs=beliefs,
        plan=plan,
        alternatives=[_alternative(a) for a in _dicts(proposed.get("alternatives"))],
        unmet=_unmet(_dict(proposed.get("plan"))),
        policy=_policy(run),
        approvals=_approvals(entry, state),
        deadline=state.deadline if state and state.deadline else entry.deadline,
        steps_done=_steps_from_state(state) if state else _steps_from_trail(run),
        context=_context(entry.proposal_id, proposed.get("context")),
        trail_url=f"/api/v1/remediations/{entry.proposal_id}/trail",
    )


def _forecast(beliefs: list[dict[str, Any]], target: str) -> ForecastView | None:
    """The forecast on the target's recorded belief (None when it had none, or one this release cannot read)."""
    shown = forecast_json(recorded_outlook(beliefs, target))
    return ForecastView.model_validate(shown) if shown is not None else None


def _words(action: Any) -> tuple[Action | None, str]:
    """A recorded action as the model and a sentence; an unreadable one as its raw text."""
    if isinstance(action, dict):
        try:
            parsed = _ACTION.validate_python(action)
        except ValidationError:
            return None, ", ".join(f"{k} {v}" for k, v in action.items())
        return parsed, describe(parsed)
    return None, "—" if action is None else str(action)


def _plan(plan: dict[str, Any], predicted_fallback: dict[str, Any]) -> PlanView:
    steps: list[PlanStepView] = []
    for index, step in enumerate(_dicts(plan.get("steps"))):
        action, words = _words(step.get("action"))
        if action is None:
            continue
        undo, undo_words = _words(step["compensation"]) if step.get("compensation") else (None, None)
        steps.append(
            PlanStepView(
                index=index,
                action=action,
                words=words,
                description=str(step.get("description", "")),
                compensation=undo,
                compensation_words=undo_words if undo else None,
                blast_radius=_number(step.get("blast_radius")),
                cost_per_hour=_number(step.get("cost_per_hour")),
            )
        )
    predicted = {}
    for node, outcome in (_dict(plan.get("predicted")) or predicted_fallback).items():
        try:
            predicted[node] = NodePrediction.model_validate({"node": node, **_dict(outcome)})
        except ValidationError:
            continue
    return PlanView(
        name=str(plan.get("name", "")),
        summary=str(plan.get("summary", "")),
        steps=steps,
        predicted=predicted,
        goals=_dicts(plan.get("goals")),
        cost_per_hour=_number(plan.get("cost_per_hour")),
        risk=_number(plan.get("risk")),
        plan_hash=str(plan.get("plan_hash", "")),
    )


def _unmet(plan: dict[str, Any]) -> list[str]:
    return [str(v) for g in _dicts(plan.get("goals")) if not g.get("met") for v in _list(g.get("violations"))]


def _alternative(alt: dict[str, Any]) -> AlternativeView:
    option = _dict(alt.get("option"))
    return AlternativeView(
        name=str(option.get("name") or alt.get("name") or ""),
        summary=str(option.get("summary", "")),
        steps=[_words(s.get("action"))[1] for s in _dicts(option.get("steps"))],
        cost_per_hour=_number(option.get("cost_per_hour")),
        risk=_number(option.get("risk")),
        unmet=_unmet(option),
        lost_because=str(alt.get("lost_because") or alt.get("rejected_because") or ""),
    )


def _policy(run: list[AuditRecord]) -> PolicyView | None:
    record = next((r for r in reversed(run) if r.kind is EventKind.POLICY_EVALUATED), None)
    if record is None:
        return None
    p = record.payload
    decision = _dict(p.get("decision"))
    groups = decision.get("approver_groups")
    required = decision.get("required_approvals")
    auto = decision.get("auto_approve")
    return PolicyView(
        allow=bool(p.get("allow")),
        risk=str(decision["risk"]) if decision.get("risk") is not None else None,
        reasons=_dicts(decision.get("deny")),
        required_approvals=required if isinstance(required, int) and not isinstance(required, bool) else None,
        approver_groups=[str(g) for g in groups] if isinstance(groups, list) else [],
        auto_approve=auto if isinstance(auto, bool) else None,
        bundle_revision=str(p.get("bundle_revision") or ""),
        bundle_sha256=str(p.get("bundle_sha256") or ""),
        engine=str(p.get("engine") or decision.get("engine") or "") or None,
        phase=str(_dict(p.get("details")).get("phase", "proposal")),
        evaluated_at=record.time,
    )


def _approvals(entry: InboxEntry, state: RemediationState | None) -> ApprovalsView:
    required = state.required_approvals if state else entry.required_approvals
    given = state.approvals if state else entry.approvals
    # Before the policy's first answer the workflow reports no count: the plain shortfall stands in.
    still_needed = state.still_needed if state and state.still_needed is not None else None
    return ApprovalsView(
        required=required,
        given=given,
        groups=(state.approver_groups if state else []) or entry.approver_groups,
        pending=(state.pending if state else []) or entry.pending,
        still_needed=still_needed if still_needed is not None else max(0, required - len(given)),
    )


def _steps_from_state(state: RemediationState) -> list[StepView]:
    return [
        StepView(
            index=s.index,
            action=s.action,
            words=describe(s.action),
            applied=s.applied,
            compensation=s.compensation,
            compensation_words=describe(s.compensation) if s.compensation else None,
        )
        for s in state.steps_done
    ]


def _steps_from_trail(run: list[AuditRecord]) -> list[StepView]:
    """Steps that finished, from the trail (for a workflow that has ended and answers no query)."""
    started: dict[str, Any] = {}
    steps: list[StepView] = []
    for record in run:
        step_id = str(record.payload.get("step_id", ""))
        if record.kind is EventKind.STEP_STARTED:
            started[step_id] = record.payload.get("action")
        elif record.kind is EventKind.STEP_SUCCEEDED and step_id in started:
            action, words = _words(started[step_id])
            result = _dict(record.payload.get("result"))
            undo, undo_words = _words(result["undo"]) if result.get("undo") else (None, None)
            index = step_id.rpartition("-")[2]
            steps.append(
                StepView(
                    index=int(index) if index.isdigit() else len(steps),
                    action=action,
                    words=words,
                    applied=result.get("applied") is not False,
                    compensation=undo,
                    compensation_words=undo_words if undo else None,
                )
            )
    return steps


def _context(proposal_id: str, raw: Any) -> ProposalContext | None:
    if not isinstance(raw, dict):
        return None
    try:
        return ProposalContext.model_validate(raw)
    except ValidationError as exc:
        # A context this release cannot read costs the picture, never the page.
        log.warning("api.context_unreadable", proposal_id=proposal_id, error=str(exc).splitlines()[0])
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
