"""Running a plan's steps once each, and undoing them in reverse from one place.

Used by RemediationWorkflow (and the playbook runner to come): each step is an activity
with an idempotency key derived from the workflow id, so a retried step is applied once;
each step's undo goes on a stack that `compensate` runs in reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from twin.actions import Action, describe
from workflows.activities import RemediationActivities
from workflows.audit import (
    CompensatedPayload,
    CompensationFailedPayload,
    CompensationStartedPayload,
    EscalatedPayload,
    EventKind,
    StepFailedPayload,
    StepStartedPayload,
    StepSucceededPayload,
)
from workflows.contracts import StepInput, StepState
from workflows.policy import action_node
from workflows.ports import NotificationKind
from workflows.recording import AuditRecorder
from workflows.timeouts import COMPENSATION_RETRY, STEP_HEARTBEAT, STEP_RETRY, STEP_TIMEOUT

__all__ = ["Notify", "StepRunner"]

Notify = Callable[[NotificationKind, str, Literal["info", "warning", "critical"]], Awaitable[None]]


class StepRunner:
    """Executes steps and keeps the compensation stack; create it in the workflow, use it from workflow code."""

    def __init__(
        self,
        *,
        recorder: AuditRecorder,
        remediation_id: str,
        plan_hash: str,
        notify: Notify,
        reasons: list[str],
        on_compensating: Callable[[], None],
    ) -> None:
        self._recorder = recorder
        self._remediation_id = remediation_id
        self._plan_hash = plan_hash
        self._notify = notify
        self._reasons = reasons
        self._on_compensating = on_compensating
        self.steps: list[StepState] = []
        self.compensations: list[tuple[int, Action]] = []
        self.compensations_failed = 0

    async def execute(self, actions: Sequence[Action]) -> bool:
        """Apply each action once, in order; False at the first that fails (its reason is recorded)."""
        wid = workflow.info().workflow_id
        for index, action in enumerate(actions):
            key = f"{wid}/step/{index}"
            step_id = f"step-{index}"
            node = action_node(action)
            await self._recorder.record(
                EventKind.STEP_STARTED,
                StepStartedPayload(
                    step_id=step_id,
                    action=action.model_dump(mode="json"),
                    idempotency_key=key,
                    details={"plan_hash": self._plan_hash},
                ),
                targets=(node,),
            )
            try:
                outcome = await workflow.execute_activity_method(
                    RemediationActivities.apply_step,
                    StepInput(idempotency_key=key, action=action, remediation_id=self._remediation_id),
                    start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=STEP_HEARTBEAT,
                    retry_policy=STEP_RETRY,
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise asyncio.CancelledError from err
                cause = err.cause
                message = str(cause) if cause else str(err)
                retryable = not (isinstance(cause, ApplicationError) and cause.non_retryable)
                self._reasons.append(f"{describe(action)} failed: {message}")
                await self._recorder.record(
                    EventKind.STEP_FAILED,
                    StepFailedPayload(step_id=step_id, error=message, retryable=retryable),
                    targets=(node,),
                )
                return False
            self.steps.append(
                StepState(
                    index=index, action=action, idempotency_key=key, applied=outcome.applied, compensation=outcome.undo
                )
            )
            if outcome.undo is not None:
                self.compensations.append((index, outcome.undo))
            await self._recorder.record(
                EventKind.STEP_SUCCEEDED,
                StepSucceededPayload(
                    step_id=step_id,
                    result={
                        "applied": outcome.applied,
                        "detail": outcome.detail,
                        "undo": outcome.undo.model_dump(mode="json") if outcome.undo else None,
                    },
                ),
                targets=(node,),
            )
        return True

    async def compensate(self) -> None:
        """Run the compensation stack in reverse; a failing undo escalates and the rest still run."""
        if not self.compensations:
            return
        self._on_compensating()
        wid = workflow.info().workflow_id
        while self.compensations:
            index, undo = self.compensations.pop()
            step_id = f"step-{index}"
            node = action_node(undo)
            await self._recorder.record(
                EventKind.COMPENSATION_STARTED,
                CompensationStartedPayload(step_id=step_id, action=undo.model_dump(mode="json")),
                targets=(node,),
            )
            try:
                outcome = await workflow.execute_activity_method(
                    RemediationActivities.compensate_step,
                    StepInput(
                        idempotency_key=f"{wid}/compensate/{index}", action=undo, remediation_id=self._remediation_id
                    ),
                    start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=STEP_HEARTBEAT,
                    retry_policy=COMPENSATION_RETRY,
                )
            except ActivityError as err:
                message = str(err.cause) if err.cause else str(err)
                self.compensations_failed += 1
                self._reasons.append(f"compensation of {step_id} ({describe(undo)}) failed: {message}")
                await self._recorder.record(
                    EventKind.COMPENSATION_FAILED,
                    CompensationFailedPayload(step_id=step_id, error=message),
                    targets=(node,),
                )
                # Never dropped: the estate is left changed, so a human must look now.
                await self._recorder.record(
                    EventKind.ESCALATED,
                    EscalatedPayload(to="on-call", reason=f"compensation of {step_id} failed: {message}"),
                    actor="system",
                )
                await self._notify(
                    NotificationKind.COMPENSATION_FAILED, f"Compensation failed: {describe(undo)}", "critical"
                )
                continue
            await self._recorder.record(
                EventKind.COMPENSATED,
                CompensatedPayload(step_id=step_id, result={"applied": outcome.applied, "detail": outcome.detail}),
                targets=(node,),
            )
