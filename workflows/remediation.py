"""RemediationWorkflow: one proposal from policy check to verified fix or rollback.

Phases, each a method: record the proposal and evaluate the safety policy (deny ends it)
-> request approval (inbox, notification) and await the verdict: approvals arrive as
signed, validated Updates counted by the approval policy, or the policy auto-approves;
no quorum in time escalates, then expires -> check again at the moment of action ->
execute the steps (idempotency key per step, compensation pushed on a stack) -> wait the
verification window (durable timer), verify, and settle: completed, or compensations in
reverse -> rolled back. Every state change writes one audit event.

Deterministic: time from `workflow.now()`, ids from the workflow id, no I/O. Changes to
the commands it issues ship behind `workflow.patched` (see CHANGELOG.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from agents import Proposal
    from twin.actions import describe
    from workflows.activities import RemediationActivities
    from workflows.approval_book import PENDING_STAGES, ApprovalBook, approver_of
    from workflows.audit import (
        ApprovalRequestedPayload,
        ApprovedPayload,
        CancelledPayload,
        CompletedPayload,
        EscalatedPayload,
        EventKind,
        ExpiredPayload,
        PolicyEvaluatedPayload,
        ProposedPayload,
        RejectedPayload,
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
        SignedDecision,
        Stage,
        VerifyInput,
        VerifyResult,
        actor_of,
    )
    from workflows.decisions import DecisionKind, check_preapproval
    from workflows.execution import StepRunner
    from workflows.policy import (
        AffectedNode,
        ApprovalDecision,
        ApprovalInput,
        PolicyProposal,
        SafetyDecision,
        SafetyInput,
        action_node,
    )
    from workflows.ports import InboxEntry, InboxStatus, Notification, NotificationKind
    from workflows.recording import AuditRecorder
    from workflows.timeouts import (
        AWAIT_GOALS_RETRY,
        INBOX_RETRY,
        INBOX_TIMEOUT,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        POLICY_RETRY,
        POLICY_TIMEOUT,
        VERIFY_RETRY,
        VERIFY_TIMEOUT,
    )

# Patches: each marks a change to the commands a run issues (see CHANGELOG.md). A run that
# began before the patch replays the old path; new runs take the new one.
PATCH_LEGACY_DECISION_CHECK = "0.2.0-check-decision-of-unkeyed-run"
PATCH_RECHECK_SAFETY = "0.2.0-recheck-safety-before-first-step"
PATCH_NOTIFY_DENIED = "0.2.0-notify-policy-denied"
PATCH_NOTIFY_AUTO_APPROVED = "0.2.0-notify-auto-approved"
PATCH_POLICY_ERROR_DENIES = "0.2.0-policy-error-denies-on-record"
PATCH_LOOP_BREAKER_ESCALATES = "0.2.0-loop-breaker-escalates"
PATCH_VERIFY_BY_POLLING = "0.2.0-verify-by-polling"
PATCH_CANCEL_DURING_NOTIFY = "0.3.0-cancel-during-a-notification-cancels"
PATCH_CANCEL_DURING_AN_ACTIVITY = "0.4.0-cancel-during-an-activity-cancels"

TEAM_TAG = "team"
"""The node tag naming the team that owns it (as in the twin scenarios and `Desires.team_tag`'s default)."""

_INBOX_STATUS = {
    Stage.AWAITING_APPROVAL: InboxStatus.PENDING,
    Stage.ESCALATED: InboxStatus.ESCALATED,
    Stage.EXECUTING: InboxStatus.EXECUTING,
    Stage.VERIFYING: InboxStatus.VERIFYING,
    Stage.COMPENSATING: InboxStatus.EXECUTING,
    Stage.COMPLETED: InboxStatus.COMPLETED,
    Stage.ROLLED_BACK: InboxStatus.ROLLED_BACK,
    Stage.DENIED: InboxStatus.DENIED,
    Stage.REJECTED: InboxStatus.REJECTED,
    Stage.EXPIRED: InboxStatus.EXPIRED,
    Stage.CANCELLED: InboxStatus.CANCELLED,
    Stage.FAILED: InboxStatus.FAILED,
}
"""The queue's status for each stage (the queue shows compensation as still executing)."""


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


@dataclass
class RemediationRun:
    """Where one remediation stands: the state its phases move and its queries read."""

    stage: Stage = Stage.PROPOSED
    decision: SafetyDecision | None = None
    """The safety policy's answer when the proposal was made."""
    created_at: datetime | None = None
    deadline: datetime | None = None
    """When the current wait ends (escalation, then expiry); None once decided."""
    expires_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)
    deny_codes: list[str] = field(default_factory=list)
    hold_seconds: float | None = None
    preapproval_id: str | None = None
    """The pre-approval whose approvals met the quorum, if one did."""


@workflow.defn
class RemediationWorkflow:
    """Carries one proposal through policy, approval, execution, verification and rollback."""

    @workflow.init
    def __init__(self, input: RemediationInput) -> None:
        p = input.proposal
        self._input = input
        self._run = RemediationRun()
        self._book = ApprovalBook(input)
        self._recorder = AuditRecorder(
            remediation_id=p.id,
            actor=actor_of(input.requester),
            targets=tuple(sorted({action_node(a) for a in p.actions})),
        )
        self._steps = StepRunner(
            recorder=self._recorder,
            remediation_id=p.id,
            plan_hash=p.plan_hash,
            notify=self._notify,
            reasons=self._run.reasons,
            on_compensating=self._compensating,
        )
        # The queue shows (and filters by) the team that owns the target node.
        target = next((b for b in p.beliefs_used if b.node == p.target), None)
        self._team = target.tags.get(TEAM_TAG) if target is not None else None
        # One decision at a time: an approval awaits the policy activity, and a second approval
        # (or a reject) interleaving there would be counted against a stale list of approvals.
        self._lock = asyncio.Lock()

    # ---- queries, updates, signals -------------------------------------------------------

    @workflow.query
    def state(self) -> RemediationState:
        """Live state: stage, approvals so far, what is still needed, steps done, deadline."""
        run, book, d = self._run, self._book, self._run.decision
        return RemediationState(
            proposal_id=self._input.proposal.id,
            stage=run.stage,
            risk=d.risk if d else None,
            required_approvals=d.required_approvals if d else 0,
            approvals=book.approver_ids,
            deadline=run.deadline,
            steps_done=list(self._steps.steps),
            reasons=list(run.reasons),
            actions=list(self._input.proposal.actions),
            policy_reasons=[r.msg for r in d.deny] if d else [],
            approver_groups=list(d.approver_groups) if d else [],
            pending=list(book.pending),
            still_needed=book.still_needed,
            cancelled_by=book.cancel_request.principal.id if book.cancel_request else None,
            plan_hash=self._input.proposal.plan_hash,
        )

    @workflow.update
    async def approve(self, input: ApproveInput) -> ApprovalResult:
        """Count one approval through the approval policy; on quorum, execution starts."""
        async with self._lock:
            run, book = self._run, self._book
            assert run.decision is not None and run.expires_at is not None
            if book.verdict is not None or run.stage not in PENDING_STAGES:
                return self._no_longer_pending()
            refused = await self._check_unkeyed("approve", input.principal, input.comment, input.signed)
            if refused is not None:
                return book.result(False, [refused], run.decision)
            principal = input.principal
            decision = await self._ask_approval(principal)
            if book.verdict is not None or run.stage not in PENDING_STAGES:
                # Expired (or decided) while the policy was asked: too late to count.
                return self._no_longer_pending()
            book.pending = [r.msg for r in decision.pending]
            book.still_needed = decision.still_needed
            if not decision.counts:
                return book.result(False, [r.msg for r in decision.reasons], run.decision, decision.still_needed)
            await self._count(principal, input.comment, input.signed, decision)
            if not decision.quorum_met:
                await self._inbox(_INBOX_STATUS.get(run.stage, InboxStatus.PENDING))
            return book.result(True, [r.msg for r in decision.pending], run.decision, decision.still_needed)

    async def _ask_approval(self, principal: Principal) -> ApprovalDecision:
        """Ask the approval policy whether `principal`'s approval counts, given those counted so far."""
        run = self._run
        assert run.decision is not None and run.expires_at is not None
        return await workflow.execute_activity_method(
            RemediationActivities.evaluate_approval,
            ApprovalInput(
                approver=approver_of(principal),
                requester=self._input.requester,
                proposal=policy_proposal(self._input.proposal),
                safety=run.decision,
                approvals=list(self._book.approvals),
                now=workflow.now(),
                expires_at=run.expires_at,
            ),
            start_to_close_timeout=POLICY_TIMEOUT,
            retry_policy=POLICY_RETRY,
        )

    async def _count(
        self,
        principal: Principal,
        comment: str,
        signed: SignedDecision | None,
        decision: ApprovalDecision,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Count an approval the policy accepted, on record with its signature; approved at quorum."""
        self._book.count(principal, workflow.now(), signed.nonce if signed else None)
        await self._recorder.record(
            EventKind.APPROVED,
            ApprovedPayload(
                by=principal.id,
                comment=comment,
                rule=f"twinops.approval.decision@{decision.bundle_revision}",
                details={
                    **(details or {}),
                    "quorum_met": decision.quorum_met,
                    "still_needed": decision.still_needed,
                    "signed_decision": signed.model_dump(mode="json") if signed else None,
                },
            ),
            actor=f"user:{principal.id}",
        )
        if decision.quorum_met:
            self._book.verdict = "approved"

    @approve.validator
    def _validate_approve(self, input: ApproveInput) -> None:
        self._validate("approve", input.principal, input.comment, input.signed)
        if self._book.has_approved(input.principal.id):
            raise ValueError(f"{input.principal.id!r} has already approved proposal {self._input.proposal.id!r}")

    @workflow.update
    async def reject(self, input: RejectInput) -> ApprovalResult:
        """Reject the proposal; nothing runs."""
        async with self._lock:
            run, book = self._run, self._book
            if book.verdict is not None or run.stage not in PENDING_STAGES:
                return self._no_longer_pending()
            refused = await self._check_unkeyed("reject", input.principal, input.reason, input.signed)
            if refused is not None:
                return book.result(False, [refused], run.decision)
            run.reasons.append(f"rejected by {input.principal.id}: {input.reason}")
            book.decided = (input.principal.id, input.reason)
            await self._recorder.record(
                EventKind.REJECTED,
                RejectedPayload(
                    by=input.principal.id,
                    comment=input.reason,
                    rule="twinops.reject",
                    details={"signed_decision": input.signed.model_dump(mode="json") if input.signed else None},
                ),
                actor=f"user:{input.principal.id}",
            )
            book.verdict = "rejected"
            return book.result(False, ["rejected"], run.decision)

    @reject.validator
    def _validate_reject(self, input: RejectInput) -> None:
        self._validate("reject", input.principal, input.reason, input.signed)

    @workflow.update
    async def request_cancel(self, input: CancelInput) -> None:
        """Name who cancels and why; the approval service then cancels the workflow through Temporal."""
        refused = await self._check_unkeyed("cancel", input.principal, input.reason, input.signed)
        if refused is not None:
            raise ApplicationError(refused, type="DecisionRefused", non_retryable=True)
        self._book.cancel_request = input

    @request_cancel.validator
    def _validate_request_cancel(self, input: CancelInput) -> None:
        if self._run.stage in TERMINAL:
            raise ValueError(f"proposal {self._input.proposal.id!r} has ended (stage {self._run.stage.value})")
        self._check_signature("cancel", input.principal, input.reason, input.signed)

    @workflow.signal
    def withdraw(self, reason: str) -> None:
        """The agent reconsidered: withdraw the proposal if it still waits for approval."""
        if self._book.verdict is None and self._run.stage in PENDING_STAGES:
            self._run.reasons.append(f"withdrawn: {reason}")
            self._book.verdict = "withdrawn"

    def _validate(self, kind: DecisionKind, principal: Principal, text: str, signed: Any) -> None:
        self._book.check_call(self._run.stage, principal.id, workflow.now(), self._run.expires_at)
        self._check_signature(kind, principal, text, signed)

    def _check_signature(self, kind: DecisionKind, principal: Principal, text: str, signed: Any) -> None:
        try:
            self._book.check_signature(kind, principal, text, signed, workflow.now())
        except ValueError as exc:
            # Refused before it reaches the history; logged so a forgery attempt is seen.
            workflow.logger.warning(
                "refused %s claimed by %r on %s: %s", kind, principal.id, self._input.proposal.id, exc
            )
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

    def _no_longer_pending(self) -> ApprovalResult:
        verdict = self._book.verdict
        why = f"already decided ({verdict})" if verdict else f"no longer pending (stage {self._run.stage.value})"
        return self._book.result(False, [f"proposal is {why}"], self._run.decision)

    # ---- the run: one method per phase -----------------------------------------------------

    @workflow.run
    async def run(self, input: RemediationInput) -> RemediationResult:
        """Carry the proposal to its end; see the module docstring."""
        self._run.created_at = workflow.now()
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except ActivityError as err:
            # A cancel that arrives while an activity runs (the inbox write right after the approval
            # request, an audit record) cancels that activity: it is the run being cancelled, and letting
            # the activity's error escape failed the run with no cancel on record and nothing compensated.
            if not (is_cancelled_exception(err) and workflow.patched(PATCH_CANCEL_DURING_AN_ACTIVITY)):
                raise
            await self._cancelled()
            raise asyncio.CancelledError() from err
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _lifecycle(self) -> None:
        await self._record_proposal()
        if not await self._evaluate_policy():
            return
        if not await self._await_approval():
            return
        # The moment of action: freeze windows, twin age and rate limits are checked again now.
        if workflow.patched(PATCH_RECHECK_SAFETY) and not await self._recheck_safety():
            return
        self._run.stage = Stage.EXECUTING
        await self._inbox(InboxStatus.EXECUTING)
        if not await self._steps.execute(self._input.proposal.actions):
            await self._steps.compensate()
            await self._finish(Stage.FAILED, "failed", "; ".join(self._run.reasons))
            return
        await self._verify_and_settle()

    async def _record_proposal(self) -> None:
        p = self._input.proposal
        await self._recorder.record(
            EventKind.PROPOSED,
            ProposedPayload(
                beliefs={"nodes": [b.model_dump(mode="json") for b in p.beliefs_used]},
                plan=p.plan.model_dump(mode="json"),
                alternatives=[a.model_dump(mode="json") for a in p.alternatives],
                rationale=p.rationale,
                predicted={k: v.model_dump(mode="json") for k, v in p.plan.predicted.items()},
                intention={"intent": p.intent, "findings": [f.model_dump(mode="json") for f in p.findings]},
                context=p.context.model_dump(mode="json") if p.context is not None else None,
                details={"playbook": self._input.playbook.model_dump(mode="json")} if self._input.playbook else {},
            ),
        )

    async def _evaluate_policy(self) -> bool:
        """Ask the safety policy; True when it allows (a deny is recorded, notified and ends the run)."""
        p, run = self._input.proposal, self._run
        run.stage = Stage.EVALUATING
        asked = SafetyInput(
            proposal=policy_proposal(p),
            snapshot_age_seconds=max(0.0, (workflow.now() - p.observed_at).total_seconds()),
            history=list(self._input.recent_actions),
            now=workflow.now(),
            requester=self._input.requester,
        )
        try:
            decision = await workflow.execute_activity_method(
                RemediationActivities.evaluate_safety,
                asked,
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=POLICY_RETRY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err) and workflow.patched(PATCH_CANCEL_DURING_AN_ACTIVITY):
                # The run is being cancelled, not the policy failing: a cancel, not a deny, goes on record.
                raise asyncio.CancelledError() from err
            if not workflow.patched(PATCH_POLICY_ERROR_DENIES):
                raise  # a run from before the patch failed here
            # The gate should answer a deny itself; if it breaks that promise, this is still a deny, on record.
            return await self._deny_unanswered(asked, err)
        run.decision = decision
        await self._recorder.record(
            EventKind.POLICY_EVALUATED,
            PolicyEvaluatedPayload(
                input_digest=_digest(asked),
                allow=decision.allow,
                decision=decision.model_dump(mode="json"),
                bundle_revision=decision.bundle_revision,
                bundle_sha256=decision.bundle_sha256 or "0" * 64,
                engine=decision.engine,
            ),
            actor="system",
        )
        if decision.allow:
            return True
        run.reasons.extend(r.msg for r in decision.deny)
        run.deny_codes = [r.code for r in decision.deny]
        breaker = next((r for r in decision.deny if r.code == "loop_breaker"), None)
        if breaker is not None and workflow.patched(PATCH_LOOP_BREAKER_ESCALATES):
            await self._break_the_loop(breaker.msg, breaker.details)
        elif workflow.patched(PATCH_NOTIFY_DENIED):
            await self._notify(NotificationKind.POLICY_DENIED, "Denied by policy", "warning")
        await self._finish(Stage.DENIED, "denied", "denied by policy: " + "; ".join(run.reasons))
        return False

    async def _break_the_loop(self, message: str, details: dict[str, Any]) -> None:
        """The policy's loop breaker said no: escalate to a human, and tell the loop how long to hold off."""
        hours = details.get("window_hours")
        self._run.hold_seconds = float(hours) * 3600 if isinstance(hours, int | float) else None
        await self._recorder.record(
            EventKind.ESCALATED,
            EscalatedPayload(to="on-call", reason=f"loop breaker: {message}", details=dict(details)),
            actor="system",
        )
        await self._notify(NotificationKind.LOOP_BREAKER, "Loop breaker: a human must look", "critical")

    async def _record_unanswered(self, asked: SafetyInput, code: str, message: str, details: dict[str, Any]) -> None:
        """A policy evaluation that produced no answer, on record as a deny (no bundle answered it)."""
        await self._recorder.record(
            EventKind.POLICY_EVALUATED,
            PolicyEvaluatedPayload(
                input_digest=_digest(asked),
                allow=False,
                decision={"deny": [{"code": code, "msg": message}]},
                bundle_revision="",
                bundle_sha256="0" * 64,
                engine=None,
                details=details,
            ),
            actor="system",
        )

    async def _deny_unanswered(self, asked: SafetyInput, err: ActivityError) -> bool:
        message = f"the safety policy could not be asked: {err.cause or err}"
        await self._record_unanswered(asked, "policy_unavailable", message, {})
        self._run.reasons.append(message)
        await self._notify(NotificationKind.POLICY_DENIED, "Denied: the policy could not be asked", "warning")
        await self._finish(Stage.DENIED, "denied", "denied by policy: " + message)
        return False

    def _human_only(self, decision: SafetyDecision) -> SafetyDecision:
        """A playbook step with `approval: always`: the policy's auto-approval is not taken, a human approves."""
        playbook = self._input.playbook
        if playbook is None or not playbook.human_approval or not decision.auto_approve:
            return decision
        return decision.model_copy(
            update={"auto_approve": False, "required_approvals": max(1, decision.required_approvals)}
        )

    async def _await_approval(self) -> bool:
        """Request approval and wait for the verdict; True when approved (any other end is recorded)."""
        p, run, book = self._input.proposal, self._run, self._book
        assert run.decision is not None
        decision = run.decision = self._human_only(run.decision)
        t = self._input.timeouts
        run.deadline = workflow.now() + timedelta(seconds=t.approval_seconds)
        run.expires_at = run.deadline + timedelta(seconds=t.expiry_seconds)
        await self._recorder.record(
            EventKind.APPROVAL_REQUESTED,
            ApprovalRequestedPayload(
                approval_id=p.id,
                required_approvals=decision.required_approvals,
                expires_at=run.expires_at,
                summary=p.rationale,
                details={"risk": decision.risk, "approver_groups": decision.approver_groups},
            ),
            actor="system",
        )
        # Pending only once the request is on record (approvals cannot precede it in the trail), and
        # shown in the queue only once pending (an SRE acting on the entry is never refused).
        run.stage = Stage.AWAITING_APPROVAL
        await self._inbox(InboxStatus.PENDING)
        if decision.auto_approve:
            book.verdict = "approved"
            await self._recorder.record(
                EventKind.APPROVED,
                ApprovedPayload(
                    by="system",
                    comment="auto-approved: the safety policy allows it for this risk and requester",
                    rule=f"twinops.safety.auto_approve@{decision.bundle_revision}",
                ),
                actor="system",
            )
            if workflow.patched(PATCH_NOTIFY_AUTO_APPROVED):
                # Told before it runs, so a human can still cancel it.
                await self._notify(NotificationKind.AUTO_APPROVED, "Auto-approved: about to run", "info")
            return True
        if await self._preapproved():
            # Told before it runs, as an auto-approval is, so a human can still cancel it.
            await self._notify(NotificationKind.AUTO_APPROVED, "Pre-approved: about to run", "info")
            return True
        await self._notify(NotificationKind.APPROVAL_REQUESTED, "Approval requested", "warning")
        await self._tell_parent_parked()
        if not await self._wait_verdict(t.approval_seconds) and not await self._escalate_then_wait():
            return False
        if book.verdict == "rejected":
            await self._finish(Stage.REJECTED, "rejected", "; ".join(run.reasons))
            return False
        if book.verdict == "withdrawn":
            await self._recorder.record(
                EventKind.CANCELLED, CancelledPayload(by="system", reason="; ".join(run.reasons))
            )
            await self._finish(Stage.CANCELLED, "cancelled", "; ".join(run.reasons))
            return False
        return True

    async def _preapproved(self) -> bool:
        """Count the approvals of the pre-approval its playbook run claimed; True when they meet the quorum.

        Only for a child of that very run (Temporal sets the parent; nobody can claim it in an input), and
        only approvals the approval service signed over this grant, each counted by the approval policy
        like an approval sent now (quorum, groups, never the user who started the run).
        """
        playbook, book, run = self._input.playbook, self._book, self._run
        if playbook is None or playbook.preapproval is None or playbook.started_at is None:
            return False
        grant, parent = playbook.preapproval, workflow.info().parent
        if parent is None or parent.workflow_id != playbook.run_id or self._input.approval_key is None:
            workflow.logger.warning("pre-approval %s ignored: not a child of run %s", grant.id, playbook.run_id)
            return False
        valid, problems = check_preapproval(
            grant,
            public_key_b64=self._input.approval_key,
            playbook=playbook.name,
            version=playbook.version,
            playbook_digest=playbook.digest,
            started_at=playbook.started_at,
        )
        async with self._lock:
            for signed in valid:
                if book.verdict is not None or run.stage not in PENDING_STAGES:
                    break
                if signed.nonce in book.nonces or book.has_approved(signed.principal.id):
                    continue
                decision = await self._ask_approval(signed.principal)
                book.pending = [r.msg for r in decision.pending]
                book.still_needed = decision.still_needed
                if not decision.counts:
                    problems.extend(f"{signed.principal.id}'s pre-approval: {r.msg}" for r in decision.reasons)
                    continue
                await self._count(
                    signed.principal,
                    signed.text,
                    signed,
                    decision,
                    {"preapproval": grant.id, "playbook_run": playbook.run_id},
                )
                if decision.quorum_met:
                    run.preapproval_id = grant.id
        if book.verdict == "approved":
            return True
        run.reasons.extend(f"pre-approval {grant.id} not enough: {p}" for p in problems)
        if book.approvals:
            await self._inbox(_INBOX_STATUS.get(run.stage, InboxStatus.PENDING))
        return False

    async def _escalate_then_wait(self) -> bool:
        """No quorum in time: escalate and wait the expiry period; False (recorded) when it expires too."""
        p, run = self._input.proposal, self._run
        t = self._input.timeouts
        run.stage = Stage.ESCALATED
        run.deadline = run.expires_at
        await self._recorder.record(
            EventKind.ESCALATED,
            EscalatedPayload(to="on-call", reason=f"no quorum after {t.approval_seconds:g}s"),
            actor="system",
        )
        await self._inbox(InboxStatus.ESCALATED)
        await self._notify(NotificationKind.ESCALATED, "Approval overdue: escalated", "critical")
        if await self._wait_verdict(t.expiry_seconds):
            return True
        run.reasons.append("no quorum before the approval expired")
        await self._recorder.record(
            EventKind.EXPIRED,
            ExpiredPayload(approval_id=p.id, waited_seconds=t.approval_seconds + t.expiry_seconds),
            actor="system",
        )
        await self._notify(NotificationKind.EXPIRED, "Proposal expired", "warning")
        await self._finish(Stage.EXPIRED, "expired", "expired without quorum")
        return False

    async def _wait_verdict(self, seconds: float) -> bool:
        try:
            await workflow.wait_condition(lambda: self._book.verdict is not None, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return False
        return True

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
            if is_cancelled_exception(err) and workflow.patched(PATCH_CANCEL_DURING_AN_ACTIVITY):
                raise asyncio.CancelledError() from err  # cancelled, not a policy outage
            # No fresh twin or no policy answer at the moment of action: fail closed.
            message = f"the twin or the policy could not be read at the moment of action: {err.cause or err}"
            await self._record_unanswered(asked, "recheck_failed", message, {"phase": "execution"})
            return await self._deny_at_action([message])
        decision = recheck.decision
        await self._recorder.record(
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
            self._run.deny_codes = [r.code for r in decision.deny]
            return await self._deny_at_action([r.msg for r in decision.deny])
        short = self._book.requirement_gap(decision)
        if short is not None:
            return await self._deny_at_action([short])
        return True

    async def _deny_at_action(self, reasons: list[str]) -> bool:
        self._run.reasons.extend(reasons)
        await self._notify(NotificationKind.POLICY_DENIED, "Denied at the moment of action", "warning")
        await self._finish(Stage.DENIED, "denied", "denied at the moment of action: " + "; ".join(reasons))
        return False

    async def _verify_and_settle(self) -> None:
        """Wait the verification window, check the goals, and complete or roll back."""
        run = self._run
        run.stage = Stage.VERIFYING
        await self._inbox(InboxStatus.VERIFYING)
        t = self._input.timeouts
        await workflow.sleep(timedelta(seconds=t.verification_window_seconds))
        verdict = await self._verify_until_settled(t.verification_settle_seconds)
        if verdict is not None and verdict.met and not verdict.worse:
            predicted = {k: v.model_dump(mode="json") for k, v in self._input.proposal.plan.predicted.items()}
            await self._recorder.record(
                EventKind.VERIFIED,
                VerifiedPayload(goal={"predicted": predicted}, observed=verdict.nodes),
                actor="system",
            )
            await self._notify(NotificationKind.COMPLETED, "Remediation verified", "info")
            await self._finish(Stage.COMPLETED, "succeeded", "verified: every affected node meets its goal")
            return
        reason = "; ".join(verdict.findings) if verdict is not None else "the twin could not be read to verify"
        run.reasons.append(reason)
        await self._recorder.record(
            EventKind.VERIFICATION_FAILED,
            VerificationFailedPayload(reason=reason, observed=verdict.nodes if verdict else {}),
            actor="system",
        )
        await self._steps.compensate()
        await self._notify(NotificationKind.ROLLED_BACK, "Remediation rolled back", "warning")
        await self._finish(Stage.ROLLED_BACK, "rolled_back", reason)

    async def _verify_until_settled(self, settle_seconds: float) -> VerifyResult | None:
        """The verdict once the goals are met, or the last one when the settle period ends without it."""
        if settle_seconds <= 0 or not workflow.patched(PATCH_VERIFY_BY_POLLING):
            return await self._verify()
        try:
            return await workflow.execute_activity_method(
                RemediationActivities.await_goals,
                self._verify_input(),
                schedule_to_close_timeout=timedelta(seconds=settle_seconds),
                start_to_close_timeout=VERIFY_TIMEOUT,
                retry_policy=AWAIT_GOALS_RETRY,
            )
        except ActivityError:
            return await self._verify()  # settled without meeting the goals: one last look, for the findings

    def _verify_input(self) -> VerifyInput:
        return VerifyInput(
            proposal=self._input.proposal,
            tolerance=self._input.verification_tolerance,
            latency_slo_ms=dict(self._input.latency_slo_ms),
            expect=list(self._input.playbook.expect) if self._input.playbook else [],
        )

    async def _verify(self) -> VerifyResult | None:
        try:
            return await workflow.execute_activity_method(
                RemediationActivities.verify_remediation,
                self._verify_input(),
                start_to_close_timeout=VERIFY_TIMEOUT,
                retry_policy=VERIFY_RETRY,
            )
        except ActivityError:
            return None  # fail closed: an unverifiable fix is rolled back

    async def _cancelled(self) -> None:
        """Cancelled: record who asked and why, undo what ran, and end as cancelled."""
        run, book = self._run, self._book
        run.stage = Stage.CANCELLED
        request = book.cancel_request
        if request is not None:
            by, reason, actor = request.principal.id, request.reason, f"user:{request.principal.id}"
            signed = request.signed.model_dump(mode="json") if request.signed else None
        elif (stopped := self._stopped_by_playbook()) is not None:
            by, reason, actor, signed = (*stopped, None)
        else:
            # Cancelled through Temporal directly, not through the approval service: nobody vouches.
            by, reason, actor, signed = (
                "unknown",
                "cancelled through Temporal without an attributed request",
                "system",
                None,
            )
        run.reasons.append(f"cancelled by {by}: {reason}")
        book.decided = (by, reason)
        await self._recorder.record(
            EventKind.CANCELLED,
            CancelledPayload(by=by, reason=reason, details={"signed_decision": signed}),
            actor=actor,
        )
        await self._steps.compensate()
        await self._finish(Stage.CANCELLED, "cancelled", f"cancelled by {by}: {reason}")

    # ---- helpers ---------------------------------------------------------------------------

    def _stopped_by_playbook(self) -> tuple[str, str, str] | None:
        """(by, reason, actor) of a cancel after the playbook run's deadline: the run stopping at its maximum
        duration. Read from the input and the workflow clock, never from a message anyone could send."""
        playbook = self._input.playbook
        if playbook is None or playbook.deadline is None or workflow.now() < playbook.deadline:
            return None
        actor = f"playbook:{playbook.name}"
        reason = (
            f"playbook run {playbook.run_id} reached its maximum duration at {playbook.deadline.isoformat()}: "
            "what ran is undone"
        )
        return actor, reason, actor

    def _compensating(self) -> None:
        self._run.stage = Stage.COMPENSATING

    async def _finish(self, stage: Stage, outcome: str, summary: str) -> None:
        self._run.stage = stage
        self._run.deadline = None
        await self._inbox(_INBOX_STATUS.get(stage, InboxStatus.PENDING))
        await self._recorder.record(
            EventKind.COMPLETED,
            CompletedPayload.model_validate({"outcome": outcome, "summary": summary}),
            actor="system",
        )
        await self._tell_parent()

    def _result(self) -> RemediationResult:
        p, book = self._input.proposal, self._book
        return RemediationResult(
            proposal_id=p.id,
            target=p.target,
            plan_hash=p.plan_hash,
            stage=self._run.stage,
            actions=list(p.actions),
            reasons=list(self._run.reasons),
            steps_applied=len(self._steps.steps),
            compensations_failed=self._steps.compensations_failed,
            decided_by=book.decided[0] if book.decided else None,
            decision_reason=book.decided[1] if book.decided else None,
            deny_codes=list(self._run.deny_codes),
            hold_seconds=self._run.hold_seconds,
            preapproval_id=self._run.preapproval_id,
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

    async def _tell_parent_parked(self) -> None:
        """A playbook run waits for its step to run or park; tell it this one waits for a human."""
        parent = workflow.info().parent
        if parent is None or self._input.playbook is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal("remediation_parked", self.state())
        except Exception:
            # The run may have ended (its maximum duration); the proposal waits in the queue all the same.
            workflow.logger.warning("could not signal parent %s", parent.workflow_id)

    async def _inbox(self, status: InboxStatus) -> None:
        p, run, d = self._input.proposal, self._run, self._run.decision
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
                created_at=run.created_at or workflow.now(),
                deadline=run.deadline,
                required_approvals=d.required_approvals if d else 0,
                approvals=self._book.approver_ids,
                reasons=list(run.reasons),
                plan="; ".join(describe(a) for a in p.actions),
                approver_groups=list(d.approver_groups) if d else [],
                pending=list(self._book.pending),
                team=self._team,
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
                        "stage": self._run.stage.value,
                    },
                ),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as err:
            # A cancel that arrives while the pager is called cancels this activity: that is the run being
            # cancelled, not a pager outage, and swallowing it lost the cancel (the run waited on and expired).
            if is_cancelled_exception(err) and workflow.patched(PATCH_CANCEL_DURING_NOTIFY):
                raise asyncio.CancelledError() from err  # the run records the cancel and compensates
            # A pager outage must not stop the remediation; the audit trail still holds every step.
            workflow.logger.warning("notification %s for %s failed", kind.value, p.id)
