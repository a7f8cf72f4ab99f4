"""Activities: the only place the loop touches the world, through ports injected by the worker.

Each class receives its ports in `__init__`; the worker registers the bound methods.
Typed domain failures become `ApplicationError(type=..., non_retryable=...)` with the
cause chained, so Temporal retries what may pass and stops on what never will.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from agents import AgentState, AlertNote, Desires, DroppedIntention, Proposal, SuppressedPlan, decide, revise
from agents.forecast import DemandHistory
from agents.playbook import Playbook, expectations_unmet, match_finding_triggers
from twin.contract import Snapshot
from twin.sources import TwinSource, TwinSourceError
from workflows.audit import AuditEventConflict, AuditEventInput, AuditLedger
from workflows.contracts import DecisionCheckInput, StepInput, VerifyInput, VerifyResult
from workflows.decisions import check_decision
from workflows.policy import ApprovalDecision, ApprovalInput, PolicyGate, SafetyDecision, SafetyInput
from workflows.ports import (
    ActionHistory,
    Actuator,
    ActuatorError,
    ApprovalInbox,
    DemandHistoryStore,
    InboxEntry,
    Notification,
    Notifier,
    NotifierError,
    OpenRemediations,
    StepOutcome,
)
from workflows.verification import check_goals

# ApplicationError types, named once so workflows and tests agree.
ACTUATOR_REJECTED = "ActuatorRejected"
TWIN_UNAVAILABLE = "TwinUnavailable"
AUDIT_CONFLICT = "AuditConflict"
NOTIFIER_REJECTED = "NotifierRejected"
DELIBERATION_FAILED = "DeliberationFailed"
GOALS_NOT_MET_YET = "GoalsNotMetYet"


# A fifth of the step heartbeat timeout: a few missed beats under load do not fail a healthy step.
HEARTBEAT_EVERY_SECONDS = 2.0
RECENT_ACTIONS_WINDOW = timedelta(hours=24)
"""How far back the moment-of-action check reads the ledger's actions (covers any rate-limit window)."""
DEMAND_HISTORY_TIMEOUT_SECONDS = 10.0
"""Longest a tick waits to read or record demand history; a slower store is treated as down."""


async def _heartbeat(detail: str) -> None:
    while True:
        activity.heartbeat(detail)
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


class SafetyRecheck(BaseModel):
    """The safety policy asked again at the moment of action: what it was asked, what it said."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: SafetyInput
    decision: SafetyDecision


class RemediationActivities:
    """Activities of a RemediationWorkflow: audit, policy, inbox, actuator, notifier, twin."""

    def __init__(
        self,
        ledger: AuditLedger,
        gate: PolicyGate,
        inbox: ApprovalInbox,
        actuator: Actuator,
        notifier: Notifier,
        twin: TwinSource,
        *,
        approval_key: str | None = None,
        history: ActionHistory | None = None,
    ) -> None:
        self.ledger = ledger
        self.gate = gate
        self.inbox = inbox
        self.actuator = actuator
        self.notifier = notifier
        self.twin = twin
        self.approval_key = approval_key
        """Base64 public key of the approval service (checks decisions of runs without one in their input)."""
        self.history = history

    @activity.defn
    async def record_event(self, event: AuditEventInput) -> int:
        """Append one audit event; idempotent by event id. Returns its sequence number."""
        try:
            record = await self.ledger.append(event)
        except (AuditEventConflict, ValueError) as exc:  # a conflicting retry or invalid event: never passes
            raise ApplicationError(str(exc), type=AUDIT_CONFLICT, non_retryable=True) from exc
        return record.seq

    @activity.defn
    async def evaluate_safety(self, input: SafetyInput) -> SafetyDecision:
        """Ask the safety policy; the gate itself fails closed, so this never raises a deny."""
        return await self.gate.evaluate_safety(input)

    @activity.defn
    async def recheck_safety(self, input: SafetyInput) -> SafetyRecheck:
        """The safety policy at the moment of action: now, a fresh twin's age, the actions taken since."""
        try:
            snapshot = await self.twin.latest()
        except TwinSourceError as exc:
            raise ApplicationError(str(exc), type=TWIN_UNAVAILABLE) from exc
        now = datetime.now(UTC)
        history = list(input.history)
        if self.history is not None:
            nodes = sorted({n.id for n in input.proposal.nodes})
            seen = {(h.at, h.node, h.action_type) for h in history}
            for record in await self.history.actions_since(nodes, now - RECENT_ACTIONS_WINDOW):
                if (record.at, record.node, record.action_type) not in seen:
                    history.append(record)
        asked = input.model_copy(
            update={
                "now": now,
                "snapshot_age_seconds": max(0.0, (now - snapshot.observed_at).total_seconds()),
                "history": history,
            }
        )
        return SafetyRecheck(input=asked, decision=await self.gate.evaluate_safety(asked))

    @activity.defn
    async def check_decision(self, input: DecisionCheckInput) -> str | None:
        """Check a signed decision against this worker's approval key; None when it is good, else why not."""
        if self.approval_key is None:
            return "this worker has no approval key configured: no decision can be checked"  # fail closed
        try:
            check_decision(
                input.signed,
                public_key_b64=self.approval_key,
                kind=input.kind,
                proposal_id=input.proposal_id,
                plan_hash=input.plan_hash,
                principal=input.principal,
                text=input.text,
                now=datetime.now(UTC),
            )
        except ValueError as exc:
            return str(exc)
        return None

    @activity.defn
    async def evaluate_approval(self, input: ApprovalInput) -> ApprovalDecision:
        """Ask the approval policy whether one approval counts and whether the quorum is met."""
        return await self.gate.evaluate_approval(input)

    @activity.defn
    async def update_inbox(self, entry: InboxEntry) -> None:
        """Project the workflow's state into the approval inbox."""
        await self.inbox.upsert(entry)

    async def _actuate(self, step: StepInput) -> StepOutcome:
        # Heartbeat while the estate works, so a dead worker is noticed within the heartbeat
        # timeout and the step is retried elsewhere under the same idempotency key.
        beat = asyncio.create_task(_heartbeat(step.idempotency_key))
        try:
            return await self.actuator.apply(step.idempotency_key, step.action)
        except ActuatorError as exc:
            if exc.permanent:
                raise ApplicationError(str(exc), type=ACTUATOR_REJECTED, non_retryable=True) from exc
            raise
        finally:
            beat.cancel()

    @activity.defn
    async def apply_step(self, step: StepInput) -> StepOutcome:
        """Apply one plan step; the actuator treats a repeated idempotency key as done."""
        return await self._actuate(step)

    @activity.defn
    async def compensate_step(self, step: StepInput) -> StepOutcome:
        """Apply one compensation (its own idempotency key)."""
        return await self._actuate(step)

    @activity.defn
    async def notify(self, notification: Notification) -> None:
        """Tell the humans on call; a permanent delivery failure (e.g. 404) is not retried."""
        try:
            await self.notifier.notify(notification)
        except NotifierError as exc:
            if exc.permanent:
                raise ApplicationError(str(exc), type=NOTIFIER_REJECTED, non_retryable=True) from exc
            raise

    @activity.defn
    async def verify_remediation(self, input: VerifyInput) -> VerifyResult:
        """Re-snapshot the twin and check the goals the plan promised."""
        try:
            snapshot = await self.twin.latest()
        except TwinSourceError as exc:
            # No fresh twin: retry (the verification timer already ran); after the retry policy, fail closed.
            raise ApplicationError(str(exc), type=TWIN_UNAVAILABLE) from exc
        verdict = check_goals(input.proposal, snapshot, input.tolerance, input.latency_slo_ms)
        if not input.expect:
            return verdict
        unmet = expectations_unmet(revise(None, snapshot, now=datetime.now(UTC)), input.proposal.target, input.expect)
        if not unmet:
            return verdict
        return verdict.model_copy(update={"met": False, "findings": [*verdict.findings, *unmet]})

    @activity.defn
    async def await_goals(self, input: VerifyInput) -> VerifyResult:
        """Succeed once the goals are met and nothing is worse; raise (and be retried, paced) until then."""
        verdict = await self.verify_remediation(input)
        if verdict.met and not verdict.worse:
            return verdict
        # Not a failure yet: the retry policy asks again until the settle period ends (samples-python polling).
        # BENIGN: the worker logs these expected attempts at DEBUG, not as a warning with a traceback each.
        raise ApplicationError(
            "goals not met yet: " + "; ".join(verdict.findings),
            type=GOALS_NOT_MET_YET,
            category=ApplicationErrorCategory.BENIGN,
        )


class DeliberateInput(BaseModel):
    """One agent tick: the agent's state and the newest snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: AgentState = Field(default_factory=AgentState)
    snapshot: Snapshot
    history: list[Snapshot] = Field(default_factory=list)
    cooling_playbooks: list[str] = Field(default_factory=list)
    """Playbooks a finding started within the loop's cool-down: not started again, not handed nodes."""
    handed_nodes: list[str] = Field(default_factory=list)
    """Nodes a playbook run the loop started is working on: the agent proposes nothing there until it ends."""
    alerts: list[AlertNote] = Field(default_factory=list)
    """Alerts firing on the twin's nodes (Alertmanager): evidence in beliefs, findings and rationales."""


class TriggeredPlaybook(BaseModel):
    """A playbook this tick's findings set off (a `finding` trigger), for the loop to start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    playbook: Playbook
    nodes: tuple[str, ...]
    reason: str
    """In words: `at_risk on order-events`."""


class DeliberateResult(BaseModel):
    """What a tick hands back to the loop: the next state, new proposals, dropped intentions.

    Beliefs and detection stay inside the activity: on large graphs they run to megabytes,
    and the loop's history should carry decisions, not the reasoning's working memory
    (each proposal keeps the beliefs it used, for the audit trail).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    new_state: AgentState
    proposals: tuple[Proposal, ...] = ()
    dropped_intentions: tuple[DroppedIntention, ...] = ()
    suppressed: tuple[SuppressedPlan, ...] = ()
    """Plans held back because a human said no to them (who, why, until when)."""
    triggered: tuple[TriggeredPlaybook, ...] = ()
    """Playbooks whose finding triggers fired: the loop starts each; the agent proposes nothing on their nodes."""


class AgentActivities:
    """Activities of the AgentLoopWorkflow: observe the twin, deliberate.

    With a `demand_history` store, each tick reads the twin's demand history for forecasting and
    records the demand it trusts. The series stays between the activity and the store, never in
    the loop's history; a store that fails or hangs costs the tick its forecasts, never the tick.
    """

    def __init__(
        self,
        twin: TwinSource,
        desires: Desires,
        demand_history: DemandHistoryStore | None = None,
        open_remediations: OpenRemediations | None = None,
        playbooks: Sequence[Playbook] = (),
    ) -> None:
        self.twin = twin
        self.desires = desires
        self.demand_history = demand_history
        self.open_remediations = open_remediations
        """The inbox's open remediations: a node a playbook run (or anyone) is working on gets no second one."""
        self.playbooks = {p.name: p for p in playbooks}
        """Playbooks with finding triggers: a tick whose findings set one off hands it the nodes."""

    @activity.defn
    async def take_snapshot(self) -> Snapshot:
        """The newest valid, fresh snapshot; a stale or invalid twin fails the activity (no action)."""
        try:
            return await self.twin.latest()
        except TwinSourceError as exc:
            raise ApplicationError(str(exc), type=TWIN_UNAVAILABLE) from exc

    @activity.defn
    async def deliberate(self, input: DeliberateInput) -> DeliberateResult:
        """Run one BDI tick (pure) on the snapshot: revise, detect, deliberate, plan.

        With a store, the demand history is read first (for forecasts) and the tick's trusted demand
        recorded after; neither can fail the tick, and a retry records nothing twice.
        """
        # The activity may read the clock (its result is recorded); it feeds the staleness check and
        # the window of demand history read.
        now = datetime.now(UTC)
        # The history is read up to the twin's own time (a simulator's clock need not be ours), and
        # only for the nodes with no inflow: forecasts are made at the entries (agents/outlook.py).
        fed = {e.target for e in input.snapshot.edges if e.ratio > 0}
        roots = [n.id for n in input.snapshot.nodes if n.id not in fed]
        demand_history = await self._read_demand_history(input.snapshot.twin_id, input.snapshot.observed_at, roots)
        try:
            decision = decide(
                input.state,
                input.snapshot,
                self.desires,
                history=input.history,
                now=now,
                demand_history=demand_history,
                alerts=input.alerts,
            )
        except (ValueError, ArithmeticError, RecursionError) as exc:
            # The same snapshot fails the same way every time: do not retry, let the loop skip the tick.
            raise ApplicationError(
                f"deliberation failed on the snapshot observed at {input.snapshot.observed_at.isoformat()}: {exc}",
                type=DELIBERATION_FAILED,
                non_retryable=True,
            ) from exc
        if not decision.beliefs.stale:
            # Only what the agent trusts enters the history: a guess would become tomorrow's season.
            trusted = {n: b.demand for n, b in decision.beliefs.nodes.items() if b.trusted and math.isfinite(b.demand)}
            await self._record_demand(input.snapshot.twin_id, input.snapshot.observed_at, trusted)
        matches = match_finding_triggers(
            list(self.playbooks.values()),
            decision.detection.findings,
            decision.beliefs,
            skip=input.cooling_playbooks,
        )
        handed = {n for m in matches for n in m.nodes} | set(input.handed_nodes)
        # The operator's playbook is the declared answer to its findings: the agent steps aside on those
        # nodes this tick (and proposes next tick, when the playbook cools down, if the playbook did nothing).
        proposals = await self._not_busy(
            input.snapshot.twin_id, tuple(p for p in decision.proposals if p.target not in handed)
        )
        held = {p.id for p in decision.proposals} - {p.id for p in proposals}
        # A proposal held back is not an intention: once the other remediation ends, the agent proposes again.
        new_state = decision.new_state.model_copy(
            update={"intentions": tuple(i for i in decision.new_state.intentions if i.id not in held)}
        )
        return DeliberateResult(
            new_state=new_state,
            proposals=proposals,
            dropped_intentions=decision.dropped_intentions,
            suppressed=decision.suppressed,
            triggered=tuple(
                TriggeredPlaybook(playbook=self.playbooks[m.playbook], nodes=m.nodes, reason=m.reason())
                for m in matches
            ),
        )

    async def _not_busy(self, twin_id: str, proposals: tuple[Proposal, ...]) -> tuple[Proposal, ...]:
        """The proposals whose target no other open remediation works on (never two at once on a node).

        The loop knows its own open remediations; the inbox also knows those a playbook run started.
        An inbox that cannot be read holds every proposal back this tick (fail closed): the next tick asks again.
        """
        if self.open_remediations is None or not proposals:
            return proposals
        try:
            busy = await asyncio.wait_for(self.open_remediations.open_targets(twin_id), DEMAND_HISTORY_TIMEOUT_SECONDS)
        except Exception as exc:
            activity.logger.warning("open remediations of %r unreadable, proposing nothing: %s", twin_id, exc)
            return ()
        kept = tuple(p for p in proposals if p.target not in busy or busy[p.target] == p.id)
        for p in proposals:
            if p not in kept:
                activity.logger.info(
                    "%s held back: %s is already being remediated (%s)", p.id, p.target, busy[p.target]
                )
        return kept

    async def _read_demand_history(
        self, twin_id: str, now: datetime, nodes: Sequence[str] | None = None
    ) -> DemandHistory | None:
        """The twin's demand history, or None (decide without forecasts) when there is no store or it fails."""
        if self.demand_history is None:
            return None
        try:
            return await asyncio.wait_for(self.demand_history.read(twin_id, now, nodes), DEMAND_HISTORY_TIMEOUT_SECONDS)
        except Exception as exc:  # forecasting improves a tick, it is no safety gate: an outage must not stop it
            activity.logger.warning(
                "demand history of twin %r unreadable, deciding without forecasts: %s: %s",
                twin_id,
                type(exc).__name__,
                exc,
            )
            return None

    async def _record_demand(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> None:
        """Record the tick's trusted demand; a failure is logged and the tick goes on (the bucket just has fewer)."""
        if self.demand_history is None or not demand:
            return
        try:
            await asyncio.wait_for(
                self.demand_history.record(twin_id, observed_at, demand), DEMAND_HISTORY_TIMEOUT_SECONDS
            )
        except Exception as exc:
            activity.logger.warning(
                "demand history of twin %r not recorded for %s: %s: %s",
                twin_id,
                observed_at.isoformat(),
                type(exc).__name__,
                exc,
            )
