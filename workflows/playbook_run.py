"""PlaybookRunWorkflow: one generic interpreter of a validated playbook (samples-python's `dsl` pattern).

The input carries the playbook itself (a schedule holds the version it was synced with). The run
plans it once on a fresh snapshot (an activity: `agents.playbook.plan_playbook`, pure, over the
twin and the demand history), then takes the matching nodes in the twin's topological order,
one at a time. Each node's proposal runs as a child `RemediationWorkflow` with requester
`playbook:NAME`: the same safety policy, approval policy, inbox, execution, verification and
compensation as the agent loop's proposals. What the policy auto-approves runs at once and
the run waits for it to end; what needs a human parks in the SRE queue (the child tells the
run) and the run moves on. Parked children outlive the run (parent close policy ABANDON).

The run stops at its maximum duration (the child running then is cancelled and undoes what it
did; the trail says the run's deadline stopped it) or on the first failed compensation (nothing
more is started). It ends with a `PlaybookRunReport`, stored and posted by an activity, and two
audit events of its own (`playbook_run_started`, `playbook_run_finished`) under its workflow id.
A run that could not plan or whose compensation failed fails after its report is stored, so a
schedule with pause-on-failure stops until a human looks.

Deterministic: time from `workflow.now()`, no I/O outside activities.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from agents.playbook import NodePlan, StepPlan
    from twin.actions import describe
    from workflows.audit import EventKind, PlaybookRunFinishedPayload, PlaybookRunStartedPayload
    from workflows.contracts import (
        PlaybookRef,
        PreapprovalGrant,
        RemediationInput,
        RemediationResult,
        RemediationState,
        Stage,
        Timeouts,
        remediation_workflow_id,
    )
    from workflows.playbook_activities import ClaimInput, PlannedRun, PlanRunInput, PlaybookActivities
    from workflows.playbook_contracts import (
        NodeOutcome,
        NodeReport,
        PlaybookRunInput,
        PlaybookRunReport,
        PlaybookRunStatus,
        RunSkipped,
        StepReport,
        playbook_digest,
    )
    from workflows.policy import Requester, action_node
    from workflows.recording import AuditRecorder
    from workflows.remediation import RemediationWorkflow
    from workflows.timeouts import (
        PLAYBOOK_FINISH_RETRY,
        PLAYBOOK_FINISH_TIMEOUT,
        PLAYBOOK_PLAN_RETRY,
        PLAYBOOK_PLAN_TIMEOUT,
        POLICY_RETRY,
        POLICY_TIMEOUT,
    )

__all__ = ["PLAYBOOK_RUN_FAILED", "PlaybookRunState", "PlaybookRunWorkflow"]

_Child = ChildWorkflowHandle[RemediationWorkflow, RemediationResult]

PLAYBOOK_RUN_FAILED = "PlaybookRunFailed"
STOP_GRACE = timedelta(minutes=15)
"""How long a cancelled child may take to undo its steps before the run reports without it."""

_OUTCOMES: dict[Stage, NodeOutcome] = {
    Stage.COMPLETED: "ran",
    Stage.ROLLED_BACK: "rolled_back",
    Stage.FAILED: "failed",
    Stage.DENIED: "denied",
    Stage.REJECTED: "rejected",
    Stage.EXPIRED: "expired",
    Stage.CANCELLED: "cancelled",
}
_PARTIAL: frozenset[NodeOutcome] = frozenset(
    {"denied", "rolled_back", "failed", "rejected", "expired", "cancelled", "not_started", "already_open"}
)


class PlaybookRunState(BaseModel):
    """What the `state` query returns: where the run is, and the nodes reported so far."""

    model_config = ConfigDict(frozen=True)

    playbook: str
    version: int
    phase: str
    current: str | None
    deadline: datetime | None
    nodes: list[NodeReport]


@workflow.defn
class PlaybookRunWorkflow:
    """Runs one playbook over the twin; see the module docstring."""

    @workflow.init
    def __init__(self, input: PlaybookRunInput) -> None:
        self._input = input
        self._playbook = input.playbook
        self._phase = "planning"
        self._current: str | None = None
        self._deadline: datetime | None = None
        self._nodes: list[NodeReport] = []
        self._finished: dict[str, RemediationResult] = {}
        self._parked: dict[str, RemediationState] = {}
        self._stopped: str | None = None
        self._cancelled = False
        self._digest = playbook_digest(input.playbook)
        self._started: datetime | None = None
        self._grant: PreapprovalGrant | None = None
        self._preapproval_note = ""
        self._recorder = AuditRecorder(
            remediation_id=workflow.info().workflow_id, actor=f"playbook:{input.playbook.name}", targets=()
        )

    @workflow.query
    def state(self) -> PlaybookRunState:
        """The phase (planning, running, finishing, done), the node in hand, the deadline, nodes so far."""
        return PlaybookRunState(
            playbook=self._playbook.name,
            version=self._playbook.version,
            phase=self._phase,
            current=self._current,
            deadline=self._deadline,
            nodes=list(self._nodes),
        )

    @workflow.signal
    def remediation_finished(self, result: RemediationResult) -> None:
        """A child remediation ended (it signals its parent)."""
        self._finished[result.proposal_id] = result

    @workflow.signal
    def remediation_parked(self, state: RemediationState) -> None:
        """A child remediation waits for a human: the run moves on."""
        self._parked[state.proposal_id] = state

    @workflow.run
    async def run(self, input: PlaybookRunInput) -> PlaybookRunReport:
        """Plan, run node by node, report; see the module docstring."""
        playbook = self._playbook
        started = self._started = workflow.now()
        self._deadline = started + timedelta(seconds=playbook.limits.max_duration)
        await self._recorder.record(
            EventKind.PLAYBOOK_RUN_STARTED,
            PlaybookRunStartedPayload(
                playbook=playbook.name,
                trigger=input.trigger,
                parameters={"version": playbook.version, "owner": playbook.owner},
                details={
                    "reason": input.reason,
                    "requested_by": input.requested_by,
                    "deadline": self._deadline.isoformat(),
                    "max_nodes": playbook.limits.max_nodes,
                },
            ),
        )
        planned: PlannedRun | None = None
        try:
            planned = await workflow.execute_activity_method(
                PlaybookActivities.plan_playbook_run,
                PlanRunInput(playbook=playbook),
                start_to_close_timeout=PLAYBOOK_PLAN_TIMEOUT,
                retry_policy=PLAYBOOK_PLAN_RETRY,
            )
        except ActivityError as err:
            self._stopped = f"could not plan: {err.cause or err}"
        if planned is not None and planned.plan.proposals:
            await self._claim(started)
        if planned is not None:
            self._phase = "running"
            for node in planned.plan.nodes:
                self._nodes.append(await self._node(node, planned))
        report = await self._finish(started, planned)
        await self._tell_parent(report)
        if self._cancelled:
            raise asyncio.CancelledError()
        if report.status == "failed":
            # After the report is kept: a schedule with pause-on-failure waits for a human.
            raise ApplicationError(report.summary(), type=PLAYBOOK_RUN_FAILED, non_retryable=True)
        return report

    async def _claim(self, started: datetime) -> None:
        """Claim the pre-approval covering this run (once a step may need it); without one, steps park."""
        playbook = self._playbook
        try:
            claim = await workflow.execute_activity_method(
                PlaybookActivities.claim_preapproval,
                ClaimInput(
                    playbook=playbook.name,
                    version=playbook.version,
                    playbook_digest=self._digest,
                    run_id=workflow.info().workflow_id,
                    started_at=started,
                ),
                start_to_close_timeout=POLICY_TIMEOUT,
                retry_policy=POLICY_RETRY,
            )
        except ActivityError as err:
            self._preapproval_note = (
                f"no pre-approval: the claim failed ({err.cause or err}); steps that need a human wait"
            )
            return
        self._grant = claim.grant
        self._preapproval_note = claim.note

    # ---- one node ----------------------------------------------------------------------------

    async def _node(self, node: NodePlan, planned: PlannedRun) -> NodeReport:
        base = NodeReport(
            node=node.node,
            outcome="not_met",
            summary="",
            preconditions=list(node.preconditions),
            steps=[
                StepReport(
                    name=s.name,
                    action=describe(s.action) if s.action is not None else "",
                    status=s.status,
                    reason=s.reason,
                )
                for s in node.steps
            ],
            before=planned.before.get(node.node),
        )
        if node.proposal is None:
            outcome: NodeOutcome = "not_met" if not node.met else "nothing_to_do"
            return base.model_copy(update={"outcome": outcome, "summary": node.reason})
        proposal = node.proposal
        base = base.model_copy(update={"proposal_id": proposal.id})
        if self._stopped is not None:
            return base.model_copy(update={"outcome": "not_started", "summary": f"not started: {self._stopped}"})
        assert self._deadline is not None
        if workflow.now() >= self._deadline:
            self._stopped = f"the run reached its maximum duration ({self._playbook.limits.max_duration:g} s)"
            return base.model_copy(update={"outcome": "not_started", "summary": f"not started: {self._stopped}"})
        busy = planned.busy.get(node.node)
        if busy is not None:
            return base.model_copy(
                update={
                    "outcome": "already_open",
                    "workflow_id": remediation_workflow_id(busy),
                    "summary": f"a remediation of {node.node} is already in progress ({busy}): not two at once",
                }
            )
        self._current = node.node
        try:
            return await self._remediate(base, node)
        finally:
            self._current = None

    async def _remediate(self, base: NodeReport, node: NodePlan) -> NodeReport:
        assert node.proposal is not None and self._deadline is not None
        proposal, playbook = node.proposal, self._playbook
        workflow_id = remediation_workflow_id(proposal.id)
        nodes = {proposal.target, *(action_node(a) for a in proposal.actions)}
        planned = [s for s in node.steps if s.action is not None]
        try:
            handle = await workflow.start_child_workflow(
                RemediationWorkflow.run,
                RemediationInput(
                    proposal=proposal,
                    requester=Requester(kind="playbook", id=playbook.name, on_behalf_of=self._input.requested_by),
                    timeouts=self._child_timeouts(planned),
                    latency_slo_ms={k: v for k, v in self._input.latency_slo_ms.items() if k in nodes},
                    verification_tolerance=self._input.verification_tolerance,
                    approval_key=self._input.approval_key,
                    playbook=PlaybookRef(
                        name=playbook.name,
                        version=playbook.version,
                        run_id=workflow.info().workflow_id,
                        steps=[s.name for s in planned],
                        human_approval=any(s.approval == "always" for s in planned),
                        deadline=self._deadline,
                        expect=[playbook.steps[s.index].verify.expect.source for s in planned],
                        requested_by=self._input.requested_by,
                        digest=self._digest,
                        started_at=self._started,
                        preapproval=self._grant,
                    ),
                ),
                id=workflow_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return base.model_copy(
                update={
                    "outcome": "already_open",
                    "workflow_id": workflow_id,
                    "summary": f"the same proposal is already open ({workflow_id}): not run twice",
                }
            )
        base = base.model_copy(update={"workflow_id": workflow_id})
        remaining = (self._deadline - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(
                lambda: handle.done() or proposal.id in self._parked, timeout=timedelta(seconds=max(0.001, remaining))
            )
        except TimeoutError:
            self._stopped = f"the run reached its maximum duration ({self._playbook.limits.max_duration:g} s)"
            return await self._stop_child(base, handle, proposal.id, "stopped at the deadline")
        except asyncio.CancelledError:
            # The run itself was cancelled: what its step started is undone too, then the run reports.
            self._cancelled = True
            self._stopped = "the run was cancelled"
            return await self._stop_child(base, handle, proposal.id, "stopped with the run")
        if not handle.done() and proposal.id in self._parked:
            state = self._parked[proposal.id]
            return base.model_copy(
                update={
                    "outcome": "waiting_approval",
                    "stage": state.stage,
                    "risk": state.risk,
                    "summary": f"waits in the SRE queue for {state.required_approvals} "
                    + ("approval" if state.required_approvals == 1 else "approvals")
                    + (f" from {', '.join(state.approver_groups)}" if state.approver_groups else ""),
                }
            )
        return self._ended(base, await self._result(handle, proposal.id))

    def _child_timeouts(self, planned: list[StepPlan]) -> Timeouts:
        """The run's timeouts, with the goals given the steps' `verify.within` (after the window) to be met."""
        t = self._input.timeouts
        within = max(self._playbook.steps[s.index].verify.within for s in planned)
        return t.model_copy(update={"verification_settle_seconds": max(0.0, within - t.verification_window_seconds)})

    async def _stop_child(self, base: NodeReport, handle: _Child, proposal_id: str, why: str) -> NodeReport:
        """Cancel the running child; it undoes its steps (after the deadline, its trail names the run's deadline)."""
        handle.cancel()
        try:
            await workflow.wait_condition(lambda: handle.done(), timeout=STOP_GRACE)
        except TimeoutError:
            return base.model_copy(
                update={
                    "outcome": "failed",
                    "summary": f"{why} and not done undoing within {STOP_GRACE}: look at its trail",
                }
            )
        report = self._ended(base, await self._result(handle, proposal_id))
        return report.model_copy(update={"summary": f"{why}: {report.summary}"})

    async def _result(self, handle: _Child, proposal_id: str) -> RemediationResult | str:
        """The child's result; its signalled result when it was cancelled (a cancelled child raises); else why not."""
        try:
            return await handle
        except (ChildWorkflowError, asyncio.CancelledError) as err:
            signalled = self._finished.get(proposal_id)
            if signalled is not None:
                return signalled
            cause = err.cause if isinstance(err, ChildWorkflowError) else err
            return f"the remediation ended without a result: {cause}"

    def _ended(self, base: NodeReport, result: RemediationResult | str) -> NodeReport:
        if isinstance(result, str):
            self._stopped = self._stopped or result
            return base.model_copy(update={"outcome": "failed", "summary": result})
        outcome = _OUTCOMES.get(result.stage, "failed")
        if outcome == "cancelled" and result.steps_applied:
            outcome = "rolled_back"
        if result.compensations_failed:
            outcome = "failed"
            self._stopped = f"a compensation failed on {result.target}: the estate may be half-changed"
        words = "; ".join(result.reasons) or result.stage.value
        summary = {
            "ran": "ran and verified: " + "; ".join(s.action for s in base.steps if s.action),
            "denied": f"denied by the safety policy: {words}",
        }.get(outcome, f"{result.stage.value}: {words}")
        return base.model_copy(
            update={
                "outcome": outcome,
                "stage": result.stage,
                "summary": summary,
                "reasons": list(result.reasons),
                "deny_codes": list(result.deny_codes),
                "compensations_failed": result.compensations_failed,
                "preapproval_id": result.preapproval_id,
            }
        )

    # ---- the end ----------------------------------------------------------------------------

    async def _tell_parent(self, report: PlaybookRunReport) -> None:
        """A run the agent loop started (a finding trigger) tells it the nodes are free again."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal("playbook_run_finished", report)
        except Exception:
            # The loop may have continued as new: the hand-over then lapses at the run's deadline.
            workflow.logger.warning("could not signal parent %s", parent.workflow_id)

    def _status(self, planned: PlannedRun | None) -> PlaybookRunStatus:
        if planned is None or any(n.compensations_failed for n in self._nodes):
            return "failed"
        outcomes = {n.outcome for n in self._nodes}
        if outcomes & _PARTIAL:
            return "partial"
        if "waiting_approval" in outcomes:
            return "waiting_approval"
        return "succeeded"

    async def _finish(self, started: datetime, planned: PlannedRun | None) -> PlaybookRunReport:
        self._phase = "finishing"
        playbook, info = self._playbook, workflow.info()
        report = PlaybookRunReport(
            run_id=info.workflow_id,
            playbook=playbook.name,
            version=playbook.version,
            owner=playbook.owner,
            description=playbook.description,
            trigger=self._input.trigger,
            requested_by=self._input.requested_by,
            twin_id=planned.plan.twin_id if planned else None,
            started_at=started,
            ended_at=workflow.now(),
            observed_at=planned.plan.observed_at if planned else None,
            status=self._status(planned),
            stopped=self._stopped,
            history=planned.history if planned else "",
            preapproval=self._grant.id if self._grant else None,
            preapproval_note=self._preapproval_note,
            nodes=list(self._nodes),
            skipped=[RunSkipped(node=s.node, reason=s.reason) for s in planned.plan.skipped] if planned else [],
        )
        report = await workflow.execute_activity_method(
            PlaybookActivities.finish_playbook_run,
            report,
            start_to_close_timeout=PLAYBOOK_FINISH_TIMEOUT,
            retry_policy=PLAYBOOK_FINISH_RETRY,
        )
        await self._recorder.record(
            EventKind.PLAYBOOK_RUN_FINISHED,
            PlaybookRunFinishedPayload(
                playbook=playbook.name,
                outcome=report.status,
                remediations=[n.proposal_id for n in report.nodes if n.workflow_id is not None and n.proposal_id],
                summary=report.summary(),
                details={"version": playbook.version, "stopped": report.stopped},
            ),
            targets=tuple(sorted({n.node for n in report.nodes if n.workflow_id is not None})),
        )
        self._phase = "done"
        return report
