"""AgentLoopWorkflow: one per twin. Every tick: snapshot -> deliberate -> start remediations.

Never two open remediations for one node. The loop breaker is the safety policy's: the
loop feeds it the outcomes it records (each remediation's `recent_actions`), and when the
policy denies a plan under it, the loop holds that plan back for the window the policy
names instead of proposing it again and again. The loop continues-as-new when Temporal
suggests it, carrying its bookkeeping forward.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from agents import AgentState, AlertNote, Proposal, SuppressedPlan, decline, settle
    from twin.contract import Snapshot
    from workflows.activities import AgentActivities, DeliberateInput, RemediationActivities, TriggeredPlaybook
    from workflows.audit import DetectedPayload, EscalatedPayload, EventKind
    from workflows.contracts import RemediationInput, RemediationResult, Stage, Timeouts, remediation_workflow_id
    from workflows.playbook_contracts import PlaybookRunInput, PlaybookRunReport, playbook_run_id
    from workflows.playbook_run import PlaybookRunWorkflow
    from workflows.policy import ActionRecord, Requester, action_node
    from workflows.ports import Notification, NotificationKind
    from workflows.recording import AuditRecorder
    from workflows.remediation import RemediationWorkflow
    from workflows.timeouts import (
        DELIBERATE_RETRY,
        DELIBERATE_TIMEOUT,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        SNAPSHOT_RETRY,
        SNAPSHOT_TIMEOUT,
    )

PATCH_SURVIVE_TICK = "0.2.0-survive-a-failing-tick"
PATCH_POLICY_LOOP_BREAKER = "0.2.0-loop-breaker-in-policy"
PATCH_FINDING_TRIGGERS = "0.4.0-playbook-finding-triggers"
PATCH_EVENT_DRIVEN_TICKS = "0.5.0-event-driven-ticks"

MAX_ALERTS_HELD = 200
"""Firing alerts the loop keeps at most (the oldest heard of go first): an alert storm must not grow the
loop's state, its continue-as-new input or the deliberate activity's input past Temporal's payload limit."""

ALERT_TTL = timedelta(hours=6)
"""A firing alert not heard of again for this long is forgotten (Alertmanager repeats firing ones every
`repeat_interval`, 4 h by default; a lost resolution must not keep evidence forever)."""

# Bounded so continue-as-new carries a small input whatever the twin size.
HISTORY_KEPT = 60
"""Snapshots carried for trends (the agent's window is 15 min: 60 ticks at the default 15 s)."""


class HandedNode(BaseModel):
    """A node the loop handed to a playbook run a finding set off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    playbook: str
    until: datetime
    """The run's deadline (its maximum duration after it started): the hand-over lapses then at the latest."""


class WakeUp(BaseModel):
    """Signal `wake`: look at the twin now, not at the next tick (the tick stays as the safety net).

    Sent by the API when Alertmanager posts firing alerts on the twin's nodes or a snapshot is pushed,
    and by the worker when its source sees the twin change. Wake-ups that arrive while a tick runs are
    kept and answered by one more tick; resolved alerts are forgotten without a tick.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Literal["alert", "snapshot", "changed"]
    detail: str = ""
    alerts: list[AlertNote] = Field(default_factory=list)
    """Alerts now firing on nodes of the twin (new or repeated)."""
    resolved: list[str] = Field(default_factory=list)
    """Fingerprints of alerts that resolved."""


class AgentLoopInput(BaseModel):
    """Start (or continue) the loop of one twin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    twin_id: str
    agent_name: str = "bdi"
    tick_seconds: float = Field(default=15.0, gt=0)
    timeouts: Timeouts = Timeouts()
    latency_slo_ms: dict[str, float] = Field(default_factory=dict)
    cooldown_seconds: float = 300.0
    """Cool-down per node after a remediation ends (from the desires)."""
    loop_breaker_window_seconds: float = 86400.0
    """How long outcomes are carried across continue-as-new (covers the policy's loop-breaker window)."""
    loop_breaker_rollbacks: int = 2
    """Used only by runs started before 0.2.0, whose loop breaker was in Python; the policy's rule now."""
    approval_key: str | None = None
    """Base64 Ed25519 public key of the approval service, handed to every remediation started."""
    max_ticks: int | None = None
    """Stop after this many ticks (demos and tests); None runs until cancelled."""
    # Carried across continue-as-new:
    state: AgentState = Field(default_factory=AgentState)
    history: list[Snapshot] = Field(default_factory=list)
    open: dict[str, str] = Field(default_factory=dict)
    """node -> workflow id of its open remediation."""
    actions: list[ActionRecord] = Field(default_factory=list)
    escalated: list[str] = Field(default_factory=list)
    """`node/plan_hash` pairs already escalated by the loop breaker (runs before 0.2.0)."""
    held: dict[str, datetime] = Field(default_factory=dict)
    """`node/plan_hash` -> until when the policy's loop breaker holds the plan back."""
    playbooks_triggered: dict[str, datetime] = Field(default_factory=dict)
    """Playbook name -> when a finding last started it (not again within the cool-down)."""
    handed: dict[str, HandedNode] = Field(default_factory=dict)
    """Node -> the playbook run the loop started on it: the agent stays off the node until that run ends."""
    alerts: dict[str, AlertNote] = Field(default_factory=dict)
    """Firing alerts by fingerprint (evidence for the agent until resolved or ALERT_TTL passes)."""
    ticks_done: int = 0


class AgentLoopState(BaseModel):
    """What the `state` query returns (the same name as RemediationWorkflow's live-state query)."""

    model_config = ConfigDict(frozen=True)

    twin_id: str
    ticks_done: int
    open: dict[str, str]
    last_observed_at: datetime | None
    last_error: str | None
    proposals_started: int
    results: list[RemediationResult]
    failed_ticks: int = 0
    suppressed: list[SuppressedPlan] = Field(default_factory=list)
    """Plans the agent holds back because a human rejected or cancelled them."""
    held: dict[str, datetime] = Field(default_factory=dict)
    """Plans the policy's loop breaker holds back (`node/plan_hash` -> until)."""
    playbooks_triggered: dict[str, datetime] = Field(default_factory=dict)
    """Playbooks a finding started, and when (the last time each)."""
    handed: dict[str, HandedNode] = Field(default_factory=dict)
    """Nodes handed to a playbook run the loop started, until it ends."""
    alerts: list[AlertNote] = Field(default_factory=list)
    """Alerts firing on the twin's nodes, oldest first."""
    woken: int = 0
    """Ticks a wake-up (alert, pushed or changed snapshot) started before the periodic tick was due."""
    nodes: list[str] = Field(default_factory=list)
    """The node ids of the last snapshot (the API checks alerts against them)."""


_OUTCOMES = {Stage.COMPLETED: "verified", Stage.ROLLED_BACK: "rolled_back", Stage.FAILED: "rolled_back"}


@workflow.defn
class AgentLoopWorkflow:
    """Watches one twin and starts a RemediationWorkflow per new intention."""

    @workflow.init
    def __init__(self, input: AgentLoopInput) -> None:
        self._input = input
        self._state = input.state
        self._history = list(input.history)
        self._open = dict(input.open)
        self._actions = list(input.actions)
        self._escalated = set(input.escalated)
        self._held = dict(input.held)
        self._playbooks_triggered = dict(input.playbooks_triggered)
        self._handed = dict(input.handed)
        self._ticks = input.ticks_done
        self._last_observed: datetime | None = None
        self._last_error: str | None = None
        self._started = 0
        self._results: list[RemediationResult] = []
        # One counter for every event this run writes (loop breaker, failed ticks): ids stay unique.
        self._recorder = AuditRecorder(
            remediation_id=f"agent-loop/{input.twin_id}", actor=f"agent:{input.agent_name}", targets=()
        )
        self._failed_ticks = 0
        self._suppressed: tuple[SuppressedPlan, ...] = ()
        self._alerts = dict(input.alerts)
        self._wakes = 0
        """Wake-ups not yet answered by a tick (only their number matters: one tick answers them all)."""
        self._unrecorded: list[AlertNote] = []
        self._woken = 0
        self._nodes: list[str] = []

    @workflow.query
    def state(self) -> AgentLoopState:
        """Ticks so far, open remediations per node, last observation, recent results."""
        return AgentLoopState(
            twin_id=self._input.twin_id,
            ticks_done=self._ticks,
            open=dict(self._open),
            last_observed_at=self._last_observed,
            last_error=self._last_error,
            proposals_started=self._started,
            results=list(self._results[-20:]),
            failed_ticks=self._failed_ticks,
            suppressed=list(self._suppressed),
            held=dict(self._held),
            playbooks_triggered=dict(self._playbooks_triggered),
            handed=dict(self._handed),
            alerts=sorted(self._alerts.values(), key=lambda a: (a.starts_at, a.fingerprint)),
            woken=self._woken,
            nodes=list(self._nodes),
        )

    @workflow.signal
    def wake(self, wake: WakeUp) -> None:
        """Tick now: an alert fired, a snapshot was pushed, or the twin changed (see `WakeUp`)."""
        for fingerprint in wake.resolved:
            self._alerts.pop(fingerprint, None)
        fresh = False
        for alert in wake.alerts:
            known = self._alerts.get(alert.fingerprint)
            if known is None or known.starts_at != alert.starts_at:
                self._unrecorded.append(alert)  # a new firing goes on record once and wakes the loop
                fresh = True
            self._alerts[alert.fingerprint] = alert  # a repeat only refreshes it
        if len(self._alerts) > MAX_ALERTS_HELD:
            kept = sorted(self._alerts.values(), key=lambda a: (a.received_at, a.fingerprint))[-MAX_ALERTS_HELD:]
            self._alerts = {a.fingerprint: a for a in kept}
            held = set(self._alerts)
            self._unrecorded = [a for a in self._unrecorded if a.fingerprint in held]
        if fresh or wake.reason != "alert":
            self._wakes += 1

    @workflow.signal
    def playbook_run_finished(self, report: PlaybookRunReport) -> None:
        """A playbook run the loop started ended: the agent may act on its nodes again."""
        self._handed = {n: h for n, h in self._handed.items() if h.run_id != report.run_id}

    @workflow.signal
    def remediation_finished(self, result: RemediationResult) -> None:
        """A child finished: free its node and remember the outcome for the rules."""
        for node, wid in list(self._open.items()):
            if wid == remediation_workflow_id(result.proposal_id):
                del self._open[node]
        self._results.append(result)
        if result.decided_by is not None and result.stage in (Stage.REJECTED, Stage.CANCELLED):
            # A human said no: remember it (before settling, which forgets the intention and its evidence),
            # so the same plan is not proposed again until the situation is materially worse or time passes.
            self._state = decline(
                self._state,
                node=result.target,
                plan_hash=result.plan_hash,
                outcome="rejected" if result.stage == Stage.REJECTED else "cancelled",
                at=workflow.now(),
                reason=result.decision_reason or "",
                by=result.decided_by,
                actions=list(result.actions),
            )
        if "loop_breaker" in result.deny_codes and result.hold_seconds:
            # The policy's loop breaker said no: do not ask again until its window has passed.
            key = f"{result.target}/{result.plan_hash}"
            self._held[key] = workflow.now() + timedelta(seconds=result.hold_seconds)
        self._state = settle(self._state, result.proposal_id, workflow.now(), self._input.cooldown_seconds)
        outcome = _OUTCOMES.get(result.stage)
        if outcome is None:
            return
        for action in result.actions:
            self._actions.append(
                ActionRecord.model_validate(
                    {
                        "at": workflow.now(),
                        "node": action_node(action),
                        "action_type": action.type,
                        "plan_hash": result.plan_hash,
                        "outcome": outcome,
                    }
                )
            )

    @workflow.run
    async def run(self, input: AgentLoopInput) -> AgentLoopState:
        """Tick until max_ticks (or forever), continuing-as-new when the history grows long."""
        while input.max_ticks is None or self._ticks < input.max_ticks:
            await self._tick()
            self._ticks += 1
            if input.max_ticks is not None and self._ticks >= input.max_ticks:
                break
            await self._rest(input.tick_seconds)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                while self._unrecorded:
                    # Alerts that fired since the last tick go on record here (and those arriving meanwhile): the
                    # next run does not know them as new. It ticks at once, so no wake-up is lost.
                    await self._take_wakes()
                workflow.continue_as_new(self._carry())
        return self.state()

    async def _rest(self, seconds: float) -> None:
        """Until the next tick: the periodic one, or sooner when woken (runs from before 0.5.0 just sleep)."""
        if not workflow.patched(PATCH_EVENT_DRIVEN_TICKS):
            await workflow.sleep(timedelta(seconds=seconds))
            return
        try:
            await workflow.wait_condition(lambda: self._wakes > 0, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return
        self._woken += 1

    async def _take_wakes(self) -> None:
        """Answer the wake-ups so far with this tick; put each newly firing alert on record; forget old ones."""
        self._wakes = 0
        horizon = workflow.now() - ALERT_TTL
        self._alerts = {f: a for f, a in self._alerts.items() if a.received_at >= horizon}
        unrecorded, self._unrecorded = self._unrecorded, []
        if not unrecorded:
            return
        # One event for the alerts that fired since the last tick (a storm is one activity, not hundreds).
        first = min(unrecorded, key=lambda a: (a.starts_at, a.fingerprint))
        details: dict[str, object] = {"source": first.source}
        if len(unrecorded) == 1:
            details["alert"] = first.model_dump(mode="json")
        else:
            details["alerts"] = [a.model_dump(mode="json") for a in unrecorded]
        await self._recorder.record(
            EventKind.DETECTED,
            DetectedPayload(
                twin_id=self._input.twin_id,
                observed_at=first.starts_at,
                findings=[{"kind": "alert", "node": a.node, "message": a.statement()} for a in unrecorded],
                details=details,
            ),
            actor=f"user:{first.posted_by}" if first.posted_by else "system",
            targets=tuple(sorted({a.node for a in unrecorded})),
            series="alert",
        )

    def _carry(self) -> AgentLoopInput:
        horizon = workflow.now() - timedelta(seconds=self._input.loop_breaker_window_seconds)
        return self._input.model_copy(
            update={
                "state": self._state,
                "history": self._history[-HISTORY_KEPT:],
                "open": dict(self._open),
                "actions": [a for a in self._actions if a.at >= horizon],
                "escalated": sorted(self._escalated),
                "held": {k: until for k, until in self._held.items() if until > workflow.now()},
                "handed": {n: h for n, h in self._handed.items() if h.until > workflow.now()},
                "playbooks_triggered": {
                    name: at
                    for name, at in self._playbooks_triggered.items()
                    if (workflow.now() - at).total_seconds() < self._input.cooldown_seconds
                },
                "alerts": dict(self._alerts),
                "ticks_done": self._ticks,
            }
        )

    async def _tick(self) -> None:
        if self._wakes or self._unrecorded or self._alerts:
            await self._take_wakes()
        try:
            snapshot = await workflow.execute_activity_method(
                AgentActivities.take_snapshot, start_to_close_timeout=SNAPSHOT_TIMEOUT, retry_policy=SNAPSHOT_RETRY
            )
        except ActivityError as err:
            # No fresh twin, no action: fail closed and try again next tick.
            self._last_error = str(err.cause or err)
            workflow.logger.warning("tick %d: no snapshot: %s", self._ticks, self._last_error)
            return
        self._last_observed = snapshot.observed_at
        self._nodes = [n.id for n in snapshot.nodes]
        survive = workflow.patched(PATCH_SURVIVE_TICK)
        try:
            decision = await workflow.execute_activity_method(
                AgentActivities.deliberate,
                DeliberateInput(
                    state=self._state,
                    snapshot=snapshot,
                    history=self._history[-HISTORY_KEPT:],
                    cooling_playbooks=self._cooling_playbooks(),
                    handed_nodes=sorted(n for n, h in self._handed.items() if h.until > workflow.now()),
                    alerts=sorted(self._alerts.values(), key=lambda a: (a.starts_at, a.fingerprint)),
                ),
                start_to_close_timeout=DELIBERATE_TIMEOUT,
                retry_policy=DELIBERATE_RETRY,
            )
        except ActivityError as err:
            if not survive:
                raise  # a run from before 0.2.0 replays its old behaviour (it failed here)
            # One odd snapshot must not end the loop: record it, tell someone, skip the tick.
            await self._tick_failed(snapshot, str(err.cause or err))
            return
        self._history = [*self._history, snapshot][-HISTORY_KEPT:]
        self._state = decision.new_state
        self._suppressed = decision.suppressed
        for dropped in decision.dropped_intentions:
            wid = remediation_workflow_id(dropped.intention.id)
            if wid in self._open.values():
                await workflow.get_external_workflow_handle(wid).signal(
                    RemediationWorkflow.withdraw, f"the agent reconsidered ({dropped.reason}): {dropped.detail}"
                )
        for proposal in decision.proposals:
            await self._start(proposal)
        if decision.triggered and workflow.patched(PATCH_FINDING_TRIGGERS):
            for triggered in decision.triggered:
                await self._start_playbook(triggered)

    def _cooling_playbooks(self) -> list[str]:
        """Playbooks a finding started within the cool-down: the tick neither starts them nor hands them nodes."""
        now = workflow.now()
        cooling = {
            name
            for name, at in self._playbooks_triggered.items()
            if (now - at).total_seconds() < self._input.cooldown_seconds
        }
        running = {h.playbook for h in self._handed.values() if h.until > now}
        return sorted(cooling | running)

    async def _start_playbook(self, triggered: TriggeredPlaybook) -> None:
        """Start a run of a playbook a finding set off (one at a time: a playbook with a run in hand is not started)."""
        name = triggered.playbook.name
        self._playbooks_triggered[name] = workflow.now()
        run_id = playbook_run_id(name, workflow.now())
        try:
            await workflow.start_child_workflow(
                PlaybookRunWorkflow.run,
                # Built from plain data: the activity's result and this input may hold the sandbox's copies
                # of the model classes, which pydantic does not take for the host's.
                PlaybookRunInput.model_validate(
                    {
                        "playbook": triggered.playbook.model_dump(mode="json"),
                        "trigger": "finding",
                        "reason": triggered.reason,
                        "timeouts": self._input.timeouts.model_dump(mode="json"),
                        "approval_key": self._input.approval_key,
                        "latency_slo_ms": dict(self._input.latency_slo_ms),
                    }
                ),
                id=run_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return  # a run by that id started this second (by hand): it has the nodes
        until = workflow.now() + timedelta(seconds=triggered.playbook.limits.max_duration)
        for node in triggered.nodes:
            self._handed[node] = HandedNode(run_id=run_id, playbook=name, until=until)

    def _rollbacks(self, node: str, plan_hash: str) -> int:
        horizon = workflow.now() - timedelta(seconds=self._input.loop_breaker_window_seconds)
        return sum(
            1
            for a in self._actions
            if a.node == node and a.plan_hash == plan_hash and a.outcome == "rolled_back" and a.at >= horizon
        )

    async def _start(self, proposal: Proposal) -> None:
        nodes = {proposal.target, *(action_node(a) for a in proposal.actions)}
        if any(n in self._open for n in nodes):
            return  # never two open remediations for one node
        key = f"{proposal.target}/{proposal.plan_hash}"
        if workflow.patched(PATCH_POLICY_LOOP_BREAKER):
            until = self._held.get(key)
            if until is not None and workflow.now() < until:
                return  # the policy's loop breaker holds this plan back; it was escalated when it said so
        elif self._rollbacks(proposal.target, proposal.plan_hash) >= self._input.loop_breaker_rollbacks:
            # A run from before 0.2.0 keeps its Python loop breaker until it continues as new.
            if key not in self._escalated:
                self._escalated.add(key)
                await self._escalate(proposal)
            return
        workflow_id = remediation_workflow_id(proposal.id)
        try:
            await workflow.start_child_workflow(
                RemediationWorkflow.run,
                RemediationInput(
                    proposal=proposal,
                    requester=Requester(kind="agent", id=self._input.agent_name),
                    timeouts=self._input.timeouts,
                    recent_actions=[a for a in self._actions if a.node in nodes],
                    latency_slo_ms={k: v for k, v in self._input.latency_slo_ms.items() if k in nodes},
                    approval_key=self._input.approval_key,
                ),
                id=workflow_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return  # the same proposal is already running: never run it twice
        self._started += 1
        for n in nodes:
            self._open[n] = workflow_id

    async def _tick_failed(self, snapshot: Snapshot, message: str) -> None:
        self._last_error = message
        self._failed_ticks += 1
        workflow.logger.warning("tick %d failed, skipped: %s", self._ticks, message)
        loop_id = f"agent-loop/{self._input.twin_id}"
        await self._recorder.record(
            EventKind.ESCALATED,
            EscalatedPayload(
                to="on-call",
                reason=f"agent loop tick {self._ticks} skipped: {message}",
                details={"observed_at": snapshot.observed_at.isoformat(), "tick": self._ticks},
            ),
            series="tick-failed",
        )
        try:
            await workflow.execute_activity_method(
                RemediationActivities.notify,
                Notification(
                    kind=NotificationKind.LOOP_TICK_FAILED,
                    remediation_id=loop_id,
                    title=f"Agent loop tick skipped: {self._input.twin_id}",
                    text=message,
                    severity="warning",
                    fields={"twin": self._input.twin_id, "tick": str(self._ticks)},
                ),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("notification of the failed tick %d failed", self._ticks)

    async def _escalate(self, proposal: Proposal) -> None:
        await self._recorder.record(
            EventKind.ESCALATED,
            EscalatedPayload(
                to="on-call",
                reason=(
                    f"loop breaker: plan {proposal.plan_hash} for {proposal.target} was rolled back "
                    f"{self._input.loop_breaker_rollbacks} times within "
                    f"{self._input.loop_breaker_window_seconds:g}s; not proposing it again"
                ),
            ),
            remediation_id=proposal.id,
            targets=(proposal.target,),
            series="loop-breaker",
        )
