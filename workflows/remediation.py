"""RemediationWorkflow: one proposal from policy check to verified fix or rollback.

proposed -> policy (deny ends it) -> inbox -> approvals (Update, validated, counted by
the approval policy) or auto-approval -> steps (idempotency key per step, compensation
pushed on a stack) -> verification window (durable timer) -> verify -> completed, or
compensations in reverse -> rolled back. Every state change writes one audit event.

Deterministic: time from `workflow.now()`, ids from the workflow id, no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from agents import Proposal
    from twin.actions import Action, describe
    from workflows.activities import ACTUATOR_REJECTED, RemediationActivities
    from workflows.audit import (
        ApprovalRequestedPayload,
        ApprovedPayload,
        AuditEventInput,
        CancelledPayload,
        CompensatedPayload,
        CompensationFailedPayload,
        CompensationStartedPayload,
        CompletedPayload,
        EscalatedPayload,
        EventKind,
        ExpiredPayload,
        PolicyEvaluatedPayload,
        ProposedPayload,
        RejectedPayload,
        StepFailedPayload,
        StepStartedPayload,
        StepSucceededPayload,
        VerificationFailedPayload,
        VerifiedPayload,
    )
    from workflows.contracts import TERMINAL_STAGES as TERMINAL
    from workflows.contracts import (
        ApprovalResult,
        ApproveInput,
        CancelInput,
        DecisionCheckInput,
        Principal,
        RejectInput,
        RemediationInput,
        RemediationResult,
        RemediationState,
        Stage,
        StepInput,
        StepState,
        VerifyInput,
        VerifyResult,
        actor_of,
    )
    from workflows.decisions import DecisionKind, check_decision
    from workflows.policy import (
        AffectedNode,
        ApprovalInput,
        Approver,
        PriorApproval,
        SafetyDecision,
        SafetyInput,
        action_node,
    )
    from workflows.policy import Proposal as PolicyProposal
    from workflows.ports import InboxEntry, InboxStatus, Notification, NotificationKind

# Patches: each marks a change to the commands a run issues (see CHANGELOG.md). A run that
# began before the patch replays the old path; new runs take the new one.
PATCH_LEGACY_DECISION_CHECK = "0.2.0-check-decision-of-unkeyed-run"
PATCH_RECHECK_SAFETY = "0.2.0-recheck-safety-before-first-step"
PATCH_NOTIFY_DENIED = "0.2.0-notify-policy-denied"
PATCH_NOTIFY_AUTO_APPROVED = "0.2.0-notify-auto-approved"

AUDIT_TIMEOUT = timedelta(seconds=30)
# The trail must not lose an event: retry until the ledger answers (a conflict is non-retryable).
AUDIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
POLICY_TIMEOUT = timedelta(seconds=15)
POLICY_RETRY = RetryPolicy(maximum_attempts=3)
INBOX_TIMEOUT = timedelta(seconds=30)
INBOX_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=5)
STEP_TIMEOUT = timedelta(minutes=5)
STEP_HEARTBEAT = timedelta(seconds=10)
STEP_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=[ACTUATOR_REJECTED])
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=[ACTUATOR_REJECTED],
)
VERIFY_TIMEOUT = timedelta(seconds=60)
VERIFY_RETRY = RetryPolicy(maximum_attempts=5)

_PENDING = (Stage.AWAITING_APPROVAL, Stage.ESCALATED)


def _digest(model: Any) -> str:
    return hashlib.sha256(model.model_dump_json().encode()).hexdigest()


def policy_proposal(p: Proposal) -> PolicyProposal:
    """The policy's view of an agent proposal: actions, affected nodes, predicted effect, blast radius."""
    touched = {action_node(a) for a in p.actions}
    nodes = [AffectedNode.from_twin(b) for b in p.beliefs_used if b.node in touched]
    return PolicyProposal(
        id=p.id,
        plan_hash=p.plan_hash,
        actions=list(p.actions),
        nodes=nodes,
        predicted={k: v.model_dump(mode="json") for k, v in p.plan.predicted.items()},
        blast_radius=min(1.0, max(0.0, p.blast_radius)),
    )


@workflow.defn
class RemediationWorkflow:
    """Carries one proposal through policy, approval, execution, verification and rollback."""

    @workflow.init
    def __init__(self, input: RemediationInput) -> None:
        self._input = input
        self._stage = Stage.PROPOSED
        self._decision: SafetyDecision | None = None
        self._approvals: list[PriorApproval] = []
        self._verdict: Literal["approved", "rejected", "withdrawn"] | None = None
        self._deadline: datetime | None = None
        self._expires_at: datetime | None = None
        self._created_at: datetime | None = None
        self._steps: list[StepState] = []
        self._compensations: list[tuple[int, Action]] = []
        self._reasons: list[str] = []
        self._events = 0
        self._compensations_failed = 0
        # One decision at a time: an approval awaits the policy activity, and a second approval
        # (or a reject) interleaving there would be counted against a stale list of approvals.
        self._lock = asyncio.Lock()
        self._pending: list[str] = []
        self._still_needed: int | None = None
        self._nonces: set[str] = set()
        self._cancel_request: CancelInput | None = None
        self._decided: tuple[str, str] | None = None
        """(who, why) of a human rejection or cancellation: the agent must not ask again at once."""

    # ---- queries, updates, signals -------------------------------------------------------

    @workflow.query
    def state(self) -> RemediationState:
        """Live state: stage, approvals so far, steps done, deadline."""
        return RemediationState(
            proposal_id=self._input.proposal.id,
            stage=self._stage,
            risk=self._decision.risk if self._decision else None,
            required_approvals=self._decision.required_approvals if self._decision else 0,
            approvals=[a.approver.id for a in self._approvals],
            deadline=self._deadline,
            steps_done=list(self._steps),
            reasons=list(self._reasons),
            actions=list(self._input.proposal.actions),
            policy_reasons=[r.msg for r in self._decision.deny] if self._decision else [],
            approver_groups=list(self._decision.approver_groups) if self._decision else [],
            pending=list(self._pending),
            still_needed=self._still_needed,
            cancelled_by=self._cancel_request.principal.id if self._cancel_request else None,
            plan_hash=self._input.proposal.plan_hash,
        )

    @workflow.update
    async def approve(self, input: ApproveInput) -> ApprovalResult:
        """Count one approval through the approval policy; on quorum, execution starts."""
        async with self._lock:
            assert self._decision is not None and self._expires_at is not None
            if self._verdict is not None or self._stage not in _PENDING:
                return self._approval_result(False, [f"proposal is no longer pending (stage {self._stage.value})"])
            refused = await self._check_unkeyed("approve", input.principal, input.comment, input.signed)
            if refused is not None:
                return self._approval_result(False, [refused])
            principal = input.principal
            decision = await workflow.execute_activity_method(
                RemediationActivities.evaluate_approval,
                ApprovalInput(
                    approver=Approver(id=principal.id, roles=list(principal.roles), team=principal.team or ""),
                    requester=self._input.requester,
                    proposal=policy_proposal(self._input.proposal),
                    safety=self._decision,
                    approvals=list(self._approvals),
                    now=workflow.now(),
                    expires_at=self._expires_at,
                ),
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=POLICY_RETRY,
            )
            if self._verdict is not None or self._stage not in _PENDING:
                # Expired (or decided) while the policy was asked: too late to count.
                return self._approval_result(False, [f"proposal is no longer pending (stage {self._stage.value})"])
            self._pending = [r.msg for r in decision.pending]
            self._still_needed = decision.still_needed
            if not decision.counts:
                return self._approval_result(False, [r.msg for r in decision.reasons], decision.still_needed)
            if input.signed is not None:
                self._nonces.add(input.signed.nonce)
            self._approvals.append(
                PriorApproval(
                    approver=Approver(id=principal.id, roles=list(principal.roles), team=principal.team or ""),
                    at=workflow.now(),
                )
            )
            await self._record(
                EventKind.APPROVED,
                ApprovedPayload(
                    by=principal.id,
                    comment=input.comment,
                    rule=f"twinops.approval.decision@{decision.bundle_revision}",
                    details={
                        "quorum_met": decision.quorum_met,
                        "still_needed": decision.still_needed,
                        "signed_decision": input.signed.model_dump(mode="json") if input.signed else None,
                    },
                ),
                actor=f"user:{principal.id}",
            )
            if decision.quorum_met:
                self._verdict = "approved"
            else:
                await self._inbox(InboxStatus(self._stage_status()))
            return self._approval_result(True, [r.msg for r in decision.pending], decision.still_needed)

    @approve.validator
    def _validate_approve(self, input: ApproveInput) -> None:
        self._validate_decision_call(input.principal.id)
        self._validate_signature("approve", input.principal, input.comment, input.signed)
        if any(a.approver.id == input.principal.id for a in self._approvals):
            raise ValueError(f"{input.principal.id!r} has already approved proposal {self._input.proposal.id!r}")

    @workflow.update
    async def reject(self, input: RejectInput) -> ApprovalResult:
        """Reject the proposal; nothing runs."""
        async with self._lock:
            if self._verdict is not None or self._stage not in _PENDING:
                return self._approval_result(False, [f"proposal is no longer pending (stage {self._stage.value})"])
            refused = await self._check_unkeyed("reject", input.principal, input.reason, input.signed)
            if refused is not None:
                return self._approval_result(False, [refused])
            self._reasons.append(f"rejected by {input.principal.id}: {input.reason}")
            self._decided = (input.principal.id, input.reason)
            await self._record(
                EventKind.REJECTED,
                RejectedPayload(
                    by=input.principal.id,
                    comment=input.reason,
                    rule="twinops.reject",
                    details={"signed_decision": input.signed.model_dump(mode="json") if input.signed else None},
                ),
                actor=f"user:{input.principal.id}",
            )
            self._verdict = "rejected"
            return self._approval_result(False, ["rejected"])

    @reject.validator
    def _validate_reject(self, input: RejectInput) -> None:
        self._validate_decision_call(input.principal.id)
        self._validate_signature("reject", input.principal, input.reason, input.signed)

    @workflow.update
    async def request_cancel(self, input: CancelInput) -> None:
        """Name who cancels and why; the approval service then cancels the workflow through Temporal."""
        refused = await self._check_unkeyed("cancel", input.principal, input.reason, input.signed)
        if refused is not None:
            raise ApplicationError(refused, type="DecisionRefused", non_retryable=True)
        self._cancel_request = input

    @request_cancel.validator
    def _validate_request_cancel(self, input: CancelInput) -> None:
        if self._stage in TERMINAL:
            raise ValueError(f"proposal {self._input.proposal.id!r} has ended (stage {self._stage.value})")
        self._validate_signature("cancel", input.principal, input.reason, input.signed)

    @workflow.signal
    def withdraw(self, reason: str) -> None:
        """The agent reconsidered: withdraw the proposal if it still waits for approval."""
        if self._verdict is None and self._stage in _PENDING:
            self._reasons.append(f"withdrawn: {reason}")
            self._verdict = "withdrawn"

    def _validate_signature(self, kind: DecisionKind, principal: Principal, text: str, signed: Any) -> None:
        """Refuse a decision the approval service did not sign (checked here when the run has its key)."""
        key = self._input.approval_key
        if key is None:
            return  # a run from before keys were in inputs: the handler checks through an activity
        p = self._input.proposal
        try:
            check_decision(
                signed,
                public_key_b64=key,
                kind=kind,
                proposal_id=p.id,
                plan_hash=p.plan_hash,
                principal=principal,
                text=text,
                now=workflow.now(),
            )
            if signed.nonce in self._nonces:
                raise ValueError("this signed decision was used already")
        except ValueError as exc:
            workflow.logger.warning("refused %s claimed by %r on %s: %s", kind, principal.id, p.id, exc)
            raise

    async def _check_unkeyed(self, kind: DecisionKind, principal: Principal, text: str, signed: Any) -> str | None:
        """For runs without a key in their input, check the signature against the worker's key; None if good."""
        if self._input.approval_key is not None or not workflow.patched(PATCH_LEGACY_DECISION_CHECK):
            return None
        p = self._input.proposal
        problem: str | None = await workflow.execute_activity_method(
            RemediationActivities.check_decision,
            DecisionCheckInput(
                signed=signed, kind=kind, proposal_id=p.id, plan_hash=p.plan_hash, principal=principal, text=text
            ),
            start_to_close_timeout=POLICY_TIMEOUT,
            retry_policy=POLICY_RETRY,
        )
        if problem is not None:
            workflow.logger.warning("refused %s by %s on %s: %s", kind, principal.id, p.id, problem)
        return problem

    def _validate_decision_call(self, who: str) -> None:
        pid = self._input.proposal.id
        if self._stage not in _PENDING:
            raise ValueError(f"proposal {pid!r} is not pending approval (stage {self._stage.value})")
        if self._verdict is not None:
            raise ValueError(f"proposal {pid!r} is already decided ({self._verdict})")
        if self._expires_at is not None and workflow.now() >= self._expires_at:
            raise ValueError(f"proposal {pid!r} expired at {self._expires_at.isoformat()}")
        if not who:
            raise ValueError("an approver id is required")

    def _approval_result(self, counted: bool, reasons: list[str], still_needed: int | None = None) -> ApprovalResult:
        required = self._decision.required_approvals if self._decision else 0
        needed = still_needed if still_needed is not None else max(0, required - len(self._approvals))
        return ApprovalResult(
            counted=counted,
            quorum_met=self._verdict == "approved",
            approvals=[a.approver.id for a in self._approvals],
            still_needed=0 if self._verdict == "approved" else needed,
            reasons=reasons,
        )

    # ---- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RemediationInput) -> RemediationResult:
        """Carry the proposal to its end; see the module docstring."""
        self._created_at = workflow.now()
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            # Cancelled: undo what ran, record who asked and why, and end as cancelled.
            self._stage = Stage.CANCELLED
            request = self._cancel_request
            if request is not None:
                by, reason, actor = request.principal.id, request.reason, f"user:{request.principal.id}"
                signed = request.signed.model_dump(mode="json") if request.signed else None
            else:
                # Cancelled through Temporal directly, not through the approval service: nobody vouches.
                by, reason, actor, signed = (
                    "unknown",
                    "cancelled through Temporal without an attributed request",
                    "system",
                    None,
                )
            self._reasons.append(f"cancelled by {by}: {reason}")
            self._decided = (by, reason)
            await self._record(
                EventKind.CANCELLED,
                CancelledPayload(by=by, reason=reason, details={"signed_decision": signed}),
                actor=actor,
            )
            await self._compensate()
            await self._finish(Stage.CANCELLED, "cancelled", f"cancelled by {by}: {reason}")
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _lifecycle(self) -> None:
        p = self._input.proposal
        await self._record(
            EventKind.PROPOSED,
            ProposedPayload(
                beliefs={"nodes": [b.model_dump(mode="json") for b in p.beliefs_used]},
                plan=p.plan.model_dump(mode="json"),
                alternatives=[a.model_dump(mode="json") for a in p.alternatives],
                rationale=p.rationale,
                predicted={k: v.model_dump(mode="json") for k, v in p.plan.predicted.items()},
                intention={"intent": p.intent, "findings": [f.model_dump(mode="json") for f in p.findings]},
            ),
        )
        self._stage = Stage.EVALUATING
        safety_input = SafetyInput(
            proposal=policy_proposal(p),
            snapshot_age_seconds=max(0.0, (workflow.now() - p.observed_at).total_seconds()),
            history=list(self._input.recent_actions),
            now=workflow.now(),
            requester=self._input.requester,
        )
        decision = await workflow.execute_activity_method(
            RemediationActivities.evaluate_safety,
            safety_input,
            start_to_close_timeout=POLICY_TIMEOUT,
            retry_policy=POLICY_RETRY,
        )
        self._decision = decision
        await self._record(
            EventKind.POLICY_EVALUATED,
            PolicyEvaluatedPayload(
                input_digest=_digest(safety_input),
                allow=decision.allow,
                decision=decision.model_dump(mode="json"),
                bundle_revision=decision.bundle_revision,
                bundle_sha256=decision.bundle_sha256 or "0" * 64,
                engine=decision.engine,
            ),
            actor="system",
        )
        if not decision.allow:
            self._reasons.extend(r.msg for r in decision.deny)
            if workflow.patched(PATCH_NOTIFY_DENIED):
                await self._notify(NotificationKind.POLICY_DENIED, "Denied by policy", "warning")
            await self._finish(Stage.DENIED, "denied", "denied by policy: " + "; ".join(self._reasons))
            return

        t = self._input.timeouts
        now = workflow.now()
        self._deadline = now + timedelta(seconds=t.approval_seconds)
        self._expires_at = self._deadline + timedelta(seconds=t.expiry_seconds)
        await self._record(
            EventKind.APPROVAL_REQUESTED,
            ApprovalRequestedPayload(
                approval_id=p.id,
                required_approvals=decision.required_approvals,
                expires_at=self._expires_at,
                summary=p.rationale,
                details={"risk": decision.risk, "approver_groups": decision.approver_groups},
            ),
            actor="system",
        )
        # Pending only once the request is on record (approvals cannot precede it in the trail), and
        # shown in the queue only once pending (an SRE acting on the entry is never refused).
        self._stage = Stage.AWAITING_APPROVAL
        await self._inbox(InboxStatus.PENDING)
        if decision.auto_approve:
            self._verdict = "approved"
            await self._record(
                EventKind.APPROVED,
                ApprovedPayload(
                    by="system",
                    comment="auto-approved: the safety policy allows it for this risk and requester",
                    rule=f"twinops.safety.auto_approve@{decision.bundle_revision}",
                ),
                actor="system",
            )
            if workflow.patched(PATCH_NOTIFY_AUTO_APPROVED):
                await self._notify(NotificationKind.AUTO_APPROVED, "Auto-approved: about to run", "info")
        else:
            await self._notify(NotificationKind.APPROVAL_REQUESTED, "Approval requested", "warning")
            if not await self._wait_verdict(t.approval_seconds):
                self._stage = Stage.ESCALATED
                self._deadline = self._expires_at
                await self._record(
                    EventKind.ESCALATED,
                    EscalatedPayload(to="on-call", reason=f"no quorum after {t.approval_seconds:g}s"),
                    actor="system",
                )
                await self._inbox(InboxStatus.ESCALATED)
                await self._notify(NotificationKind.ESCALATED, "Approval overdue: escalated", "critical")
                if not await self._wait_verdict(t.expiry_seconds):
                    self._reasons.append("no quorum before the approval expired")
                    await self._record(
                        EventKind.EXPIRED,
                        ExpiredPayload(approval_id=p.id, waited_seconds=t.approval_seconds + t.expiry_seconds),
                        actor="system",
                    )
                    await self._notify(NotificationKind.EXPIRED, "Proposal expired", "warning")
                    await self._finish(Stage.EXPIRED, "expired", "expired without quorum")
                    return
            if self._verdict == "rejected":
                await self._finish(Stage.REJECTED, "rejected", "; ".join(self._reasons))
                return
            if self._verdict == "withdrawn":
                await self._record(EventKind.CANCELLED, CancelledPayload(by="system", reason="; ".join(self._reasons)))
                await self._finish(Stage.CANCELLED, "cancelled", "; ".join(self._reasons))
                return

        # The moment of action: freeze windows, twin age and rate limits are checked again now.
        if workflow.patched(PATCH_RECHECK_SAFETY) and not await self._recheck_safety():
            return
        self._stage = Stage.EXECUTING
        await self._inbox(InboxStatus.EXECUTING)
        if not await self._execute():
            await self._compensate()
            await self._finish(Stage.FAILED, "failed", "; ".join(self._reasons))
            return

        self._stage = Stage.VERIFYING
        await self._inbox(InboxStatus.VERIFYING)
        await workflow.sleep(timedelta(seconds=t.verification_window_seconds))
        verdict = await self._verify()
        if verdict is not None and verdict.met and not verdict.worse:
            await self._record(
                EventKind.VERIFIED,
                VerifiedPayload(goal={"predicted": safety_input.proposal.predicted}, observed=verdict.nodes),
                actor="system",
            )
            await self._notify(NotificationKind.COMPLETED, "Remediation verified", "info")
            await self._finish(Stage.COMPLETED, "succeeded", "verified: every affected node meets its goal")
            return
        reason = "; ".join(verdict.findings) if verdict is not None else "the twin could not be read to verify"
        self._reasons.append(reason)
        await self._record(
            EventKind.VERIFICATION_FAILED,
            VerificationFailedPayload(reason=reason, observed=verdict.nodes if verdict else {}),
            actor="system",
        )
        await self._compensate()
        await self._notify(NotificationKind.ROLLED_BACK, "Remediation rolled back", "warning")
        await self._finish(Stage.ROLLED_BACK, "rolled_back", reason)

    async def _recheck_safety(self) -> bool:
        """Ask the safety policy again with the time, a fresh twin and the action history of now."""
        p = self._input.proposal
        asked = SafetyInput(
            proposal=policy_proposal(p),
            snapshot_age_seconds=0.0,
            history=list(self._input.recent_actions),
            now=workflow.now(),
            requester=self._input.requester,
        )
        try:
            recheck = await workflow.execute_activity_method(
                RemediationActivities.recheck_safety,
                asked,
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=POLICY_RETRY,
            )
        except ActivityError as err:
            # No fresh twin or no policy answer at the moment of action: fail closed.
            message = f"the twin or the policy could not be read at the moment of action: {err.cause or err}"
            await self._record(
                EventKind.POLICY_EVALUATED,
                PolicyEvaluatedPayload(
                    input_digest=_digest(asked),
                    allow=False,
                    decision={"deny": [{"code": "recheck_failed", "msg": message}]},
                    bundle_revision="",
                    bundle_sha256="0" * 64,
                    engine=None,
                    details={"phase": "execution"},
                ),
                actor="system",
            )
            return await self._deny_at_action([message])
        decision = recheck.decision
        await self._record(
            EventKind.POLICY_EVALUATED,
            PolicyEvaluatedPayload(
                input_digest=_digest(recheck.input),
                allow=decision.allow,
                decision=decision.model_dump(mode="json"),
                bundle_revision=decision.bundle_revision,
                bundle_sha256=decision.bundle_sha256 or "0" * 64,
                engine=decision.engine,
                details={"phase": "execution", "snapshot_age_seconds": recheck.input.snapshot_age_seconds},
            ),
            actor="system",
        )
        if not decision.allow:
            return await self._deny_at_action([r.msg for r in decision.deny])
        short = self._requirement_gap(decision)
        if short is not None:
            return await self._deny_at_action([short])
        return True

    def _requirement_gap(self, now: SafetyDecision) -> str | None:
        """Why the approvals given no longer suffice under the policy of now (a freeze began), or None."""
        if now.auto_approve:
            return None
        groups = set(now.approver_groups)
        counted = [a for a in self._approvals if not groups or groups & set(a.approver.roles)]
        if len(counted) >= now.required_approvals:
            return None
        wanted = f" from {', '.join(sorted(groups))}" if groups else ""
        return (
            f"the policy now requires {now.required_approvals} approval(s){wanted} and "
            f"{len(counted)} of those given qualify; the requirement grew since approval"
        )

    async def _deny_at_action(self, reasons: list[str]) -> bool:
        self._reasons.extend(reasons)
        await self._notify(NotificationKind.POLICY_DENIED, "Denied at the moment of action", "warning")
        await self._finish(Stage.DENIED, "denied", "denied at the moment of action: " + "; ".join(reasons))
        return False

    async def _wait_verdict(self, seconds: float) -> bool:
        try:
            await workflow.wait_condition(lambda: self._verdict is not None, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return False
        return True

    async def _execute(self) -> bool:
        wid = workflow.info().workflow_id
        for index, action in enumerate(self._input.proposal.actions):
            key = f"{wid}/step/{index}"
            step_id = f"step-{index}"
            await self._record(
                EventKind.STEP_STARTED,
                StepStartedPayload(
                    step_id=step_id,
                    action=action.model_dump(mode="json"),
                    idempotency_key=key,
                    details={"plan_hash": self._input.proposal.plan_hash},
                ),
                targets=(action_node(action),),
            )
            try:
                outcome = await workflow.execute_activity_method(
                    RemediationActivities.apply_step,
                    StepInput(idempotency_key=key, action=action, remediation_id=self._input.proposal.id),
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
                await self._record(
                    EventKind.STEP_FAILED,
                    StepFailedPayload(step_id=step_id, error=message, retryable=retryable),
                    targets=(action_node(action),),
                )
                return False
            self._steps.append(
                StepState(
                    index=index, action=action, idempotency_key=key, applied=outcome.applied, compensation=outcome.undo
                )
            )
            if outcome.undo is not None:
                self._compensations.append((index, outcome.undo))
            await self._record(
                EventKind.STEP_SUCCEEDED,
                StepSucceededPayload(
                    step_id=step_id,
                    result={
                        "applied": outcome.applied,
                        "detail": outcome.detail,
                        "undo": outcome.undo.model_dump(mode="json") if outcome.undo else None,
                    },
                ),
                targets=(action_node(action),),
            )
        return True

    async def _verify(self) -> VerifyResult | None:
        try:
            return await workflow.execute_activity_method(
                RemediationActivities.verify_remediation,
                VerifyInput(
                    proposal=self._input.proposal,
                    tolerance=self._input.verification_tolerance,
                    latency_slo_ms=dict(self._input.latency_slo_ms),
                ),
                start_to_close_timeout=VERIFY_TIMEOUT,
                retry_policy=VERIFY_RETRY,
            )
        except ActivityError:
            return None  # fail closed: an unverifiable fix is rolled back

    async def _compensate(self) -> None:
        """Run the compensation stack in reverse, from this one place; failures escalate, never vanish."""
        if not self._compensations:
            return
        self._stage = Stage.COMPENSATING
        wid = workflow.info().workflow_id
        while self._compensations:
            index, undo = self._compensations.pop()
            step_id = f"step-{index}"
            node = action_node(undo)
            await self._record(
                EventKind.COMPENSATION_STARTED,
                CompensationStartedPayload(step_id=step_id, action=undo.model_dump(mode="json")),
                targets=(node,),
            )
            try:
                outcome = await workflow.execute_activity_method(
                    RemediationActivities.compensate_step,
                    StepInput(
                        idempotency_key=f"{wid}/compensate/{index}", action=undo, remediation_id=self._input.proposal.id
                    ),
                    start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=STEP_HEARTBEAT,
                    retry_policy=COMPENSATION_RETRY,
                )
            except ActivityError as err:
                message = str(err.cause) if err.cause else str(err)
                self._compensations_failed += 1
                self._reasons.append(f"compensation of {step_id} ({describe(undo)}) failed: {message}")
                await self._record(
                    EventKind.COMPENSATION_FAILED,
                    CompensationFailedPayload(step_id=step_id, error=message),
                    targets=(node,),
                )
                await self._record(
                    EventKind.ESCALATED,
                    EscalatedPayload(to="on-call", reason=f"compensation of {step_id} failed: {message}"),
                    actor="system",
                )
                await self._notify(
                    NotificationKind.COMPENSATION_FAILED, f"Compensation failed: {describe(undo)}", "critical"
                )
                continue
            await self._record(
                EventKind.COMPENSATED,
                CompensatedPayload(step_id=step_id, result={"applied": outcome.applied, "detail": outcome.detail}),
                targets=(node,),
            )

    # ---- helpers ---------------------------------------------------------------------------

    async def _finish(self, stage: Stage, outcome: str, summary: str) -> None:
        self._stage = stage
        self._deadline = None
        await self._inbox(InboxStatus(self._stage_status()))
        await self._record(
            EventKind.COMPLETED,
            CompletedPayload.model_validate({"outcome": outcome, "summary": summary}),
            actor="system",
        )
        await self._tell_parent()

    def _stage_status(self) -> str:
        return {
            Stage.AWAITING_APPROVAL: "pending",
            Stage.ESCALATED: "escalated",
            Stage.EXECUTING: "executing",
            Stage.VERIFYING: "verifying",
            Stage.COMPENSATING: "executing",
            Stage.COMPLETED: "completed",
            Stage.ROLLED_BACK: "rolled_back",
            Stage.DENIED: "denied",
            Stage.REJECTED: "rejected",
            Stage.EXPIRED: "expired",
            Stage.CANCELLED: "cancelled",
            Stage.FAILED: "failed",
        }.get(self._stage, "pending")

    def _result(self) -> RemediationResult:
        p = self._input.proposal
        return RemediationResult(
            proposal_id=p.id,
            target=p.target,
            plan_hash=p.plan_hash,
            stage=self._stage,
            actions=list(p.actions),
            reasons=list(self._reasons),
            steps_applied=len(self._steps),
            compensations_failed=self._compensations_failed,
            decided_by=self._decided[0] if self._decided else None,
            decision_reason=self._decided[1] if self._decided else None,
        )

    async def _tell_parent(self) -> None:
        parent = workflow.info().parent
        if parent is None or not self._input.notify_parent:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "remediation_finished", self._result()
            )
        except Exception:
            # The loop may have ended; it re-learns open remediations from its own bookkeeping.
            workflow.logger.warning("could not signal parent %s", parent.workflow_id)

    async def _record(
        self,
        kind: EventKind,
        payload: Any,
        *,
        actor: str | None = None,
        targets: tuple[str, ...] | None = None,
    ) -> None:
        self._events += 1
        info = workflow.info()
        p = self._input.proposal
        event = AuditEventInput(
            event_id=f"{info.workflow_id}/{info.run_id}/{self._events:03d}",
            time=workflow.now(),
            remediation_id=p.id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            actor=actor or actor_of(self._input.requester),
            kind=kind,
            target_nodes=targets if targets is not None else tuple(sorted({action_node(a) for a in p.actions})),
            payload=payload,
        )
        await workflow.execute_activity_method(
            RemediationActivities.record_event, event, start_to_close_timeout=AUDIT_TIMEOUT, retry_policy=AUDIT_RETRY
        )

    async def _inbox(self, status: InboxStatus) -> None:
        p = self._input.proposal
        d = self._decision
        await workflow.execute_activity_method(
            RemediationActivities.update_inbox,
            InboxEntry(
                proposal_id=p.id,
                workflow_id=workflow.info().workflow_id,
                twin_id=p.twin_id,
                status=status,
                risk=d.risk if d else "unknown",
                target=p.target,
                summary=p.rationale,
                created_at=self._created_at or workflow.now(),
                deadline=self._deadline,
                required_approvals=d.required_approvals if d else 0,
                approvals=[a.approver.id for a in self._approvals],
                reasons=list(self._reasons),
                plan="; ".join(describe(a) for a in p.actions),
                approver_groups=list(d.approver_groups) if d else [],
                pending=list(self._pending),
            ),
            start_to_close_timeout=INBOX_TIMEOUT,
            retry_policy=INBOX_RETRY,
        )

    async def _notify(
        self, kind: NotificationKind, title: str, severity: Literal["info", "warning", "critical"]
    ) -> None:
        p = self._input.proposal
        try:
            await workflow.execute_activity_method(
                RemediationActivities.notify,
                Notification(
                    kind=kind,
                    remediation_id=p.id,
                    title=f"{title}: {p.target}",
                    text=p.rationale,
                    severity=severity,
                    fields={
                        "twin": p.twin_id,
                        "plan": "; ".join(describe(a) for a in p.actions),
                        "stage": self._stage.value,
                    },
                ),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError:
            # A pager outage must not stop the remediation; the audit trail still holds every step.
            workflow.logger.warning("notification %s for %s failed", kind.value, p.id)
