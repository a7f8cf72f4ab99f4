"""Activities: the only place the loop touches the world, through ports injected by the worker.

Each class receives its ports in `__init__`; the worker registers the bound methods.
Typed domain failures become `ApplicationError(type=..., non_retryable=...)` with the
cause chained, so Temporal retries what may pass and stops on what never will.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agents import AgentState, Desires, DroppedIntention, Proposal, decide
from twin.contract import Snapshot
from twin.sources import TwinSource, TwinSourceError
from workflows.audit import AuditEventConflict, AuditEventInput, AuditLedger
from workflows.contracts import StepInput, VerifyInput, VerifyResult
from workflows.policy import ApprovalDecision, ApprovalInput, PolicyGate, SafetyDecision, SafetyInput
from workflows.ports import (
    Actuator,
    ActuatorError,
    ApprovalInbox,
    InboxEntry,
    Notification,
    Notifier,
    NotifierError,
    StepOutcome,
)
from workflows.verification import check_goals

# ApplicationError types, named once so workflows and tests agree.
ACTUATOR_REJECTED = "ActuatorRejected"
TWIN_UNAVAILABLE = "TwinUnavailable"
AUDIT_CONFLICT = "AuditConflict"
NOTIFIER_REJECTED = "NotifierRejected"


HEARTBEAT_EVERY_SECONDS = 2.0


async def _heartbeat(detail: str) -> None:
    while True:
        activity.heartbeat(detail)
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


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
    ) -> None:
        self.ledger = ledger
        self.gate = gate
        self.inbox = inbox
        self.actuator = actuator
        self.notifier = notifier
        self.twin = twin

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
        return check_goals(input.proposal, snapshot, input.tolerance, input.latency_slo_ms)


class DeliberateInput(BaseModel):
    """One agent tick: the agent's state and the newest snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: AgentState = Field(default_factory=AgentState)
    snapshot: Snapshot
    history: list[Snapshot] = Field(default_factory=list)


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


class AgentActivities:
    """Activities of the AgentLoopWorkflow: observe the twin, deliberate."""

    def __init__(self, twin: TwinSource, desires: Desires) -> None:
        self.twin = twin
        self.desires = desires

    @activity.defn
    async def take_snapshot(self) -> Snapshot:
        """The newest valid, fresh snapshot; a stale or invalid twin fails the activity (no action)."""
        try:
            return await self.twin.latest()
        except TwinSourceError as exc:
            raise ApplicationError(str(exc), type=TWIN_UNAVAILABLE) from exc

    @activity.defn
    async def deliberate(self, input: DeliberateInput) -> DeliberateResult:
        """Run one BDI tick (pure) on the snapshot: revise, detect, deliberate, plan."""
        # The activity may read the clock (its result is recorded); it only feeds the staleness check.
        decision = decide(input.state, input.snapshot, self.desires, history=input.history, now=datetime.now(UTC))
        return DeliberateResult(
            new_state=decision.new_state,
            proposals=decision.proposals,
            dropped_intentions=decision.dropped_intentions,
        )
