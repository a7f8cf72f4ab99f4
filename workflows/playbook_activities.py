"""Activities of a PlaybookRunWorkflow: plan the playbook on a fresh snapshot, and finish the run's report.

Planning is `agents.playbook.plan_playbook` (pure) over beliefs revised from the twin's newest
snapshot and the stored demand history; the activity only fetches them. Finishing takes one
more snapshot for the after figures, stores the report (idempotent by run id) and posts its
summary to the notifier. Execution, verification and compensation are not here: each node's
proposal runs as a child RemediationWorkflow, the same code the agent loop's proposals run.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from agents import Desires, revise
from agents.beliefs import Beliefs
from agents.forecast import DemandHistory
from agents.playbook import Playbook, PlaybookPlan, plan_playbook
from twin.contract import Snapshot
from twin.sources import TwinSource, TwinSourceError
from workflows.activities import DEMAND_HISTORY_TIMEOUT_SECONDS, TWIN_UNAVAILABLE
from workflows.messages import Message
from workflows.playbook_contracts import (
    NodeFigures,
    PlaybookRunReport,
    PlaybookRunStore,
    PreapprovalClaim,
    PreapprovalStore,
)
from workflows.ports import (
    DemandHistoryStore,
    Notification,
    NotificationKind,
    Notifier,
    NotifierError,
    OpenRemediations,
)

__all__ = ["ClaimInput", "PlanRunInput", "PlannedRun", "PlaybookActivities", "figures_of", "snapshot_figures"]

PLANNING_FAILED = "PlaybookPlanningFailed"


class PlanRunInput(Message):
    """Plan one playbook now."""

    playbook: Playbook


class ClaimInput(Message):
    """Claim the pre-approval covering this run, if one does."""

    playbook: str
    version: int
    playbook_digest: str
    run_id: str
    started_at: datetime


class PlannedRun(Message):
    """The playbook planned on one snapshot, with where its demand history came from and the before figures."""

    plan: PlaybookPlan
    history: str
    before: dict[str, NodeFigures] = Field(default_factory=dict)
    busy: dict[str, str] = Field(default_factory=dict)
    """Target node -> proposal id of a remediation already in progress there (the agent loop's, another run's)."""


def figures_of(beliefs: Beliefs, node: str) -> NodeFigures:
    """A node's figures from beliefs: a figure the agent does not trust is None, never 0."""
    b = beliefs.nodes[node]
    trusted = b.trusted and math.isfinite(b.demand)
    return NodeFigures(
        observed_at=beliefs.observed_at,
        replicas=b.replicas,
        demand_rps=b.demand if trusted else None,
        utilization=b.demand_utilization if trusted and math.isfinite(b.demand_utilization) else None,
        p95_ms=b.observed.latency_p95_ms,
    )


def snapshot_figures(snapshot: Snapshot, nodes: list[str]) -> dict[str, NodeFigures]:
    """Figures of `nodes` straight from a snapshot (the twin's reported metrics; a missing metric stays None)."""
    out: dict[str, NodeFigures] = {}
    for n in snapshot.nodes:
        if n.id not in nodes:
            continue
        m = n.metrics
        out[n.id] = NodeFigures(
            observed_at=snapshot.observed_at,
            replicas=n.replicas,
            demand_rps=m.arrival_rate,
            utilization=m.utilization,
            p95_ms=m.latency_p95_ms,
        )
    return out


class PlaybookActivities:
    """Plan a playbook run and finish its report, through the worker's ports."""

    def __init__(
        self,
        twin: TwinSource,
        desires: Desires,
        *,
        demand_history: DemandHistoryStore | None = None,
        runs: PlaybookRunStore | None = None,
        notifier: Notifier | None = None,
        preapprovals: PreapprovalStore | None = None,
        open_remediations: OpenRemediations | None = None,
    ) -> None:
        self.twin = twin
        self.desires = desires
        self.demand_history = demand_history
        self.runs = runs
        self.notifier = notifier
        self.preapprovals = preapprovals
        self.open_remediations = open_remediations

    @activity.defn
    async def plan_playbook_run(self, input: PlanRunInput) -> PlannedRun:
        """Plan the playbook on the twin's newest snapshot; no snapshot, no plan (the run does nothing)."""
        try:
            snapshot = await self.twin.latest()
        except TwinSourceError as exc:
            raise ApplicationError(str(exc), type=TWIN_UNAVAILABLE) from exc
        beliefs = revise(None, snapshot, desires=self.desires, now=datetime.now(UTC))
        history, where = await self._history(snapshot)
        try:
            plan = plan_playbook(
                input.playbook, beliefs, desires=self.desires, history=history, now=beliefs.observed_at
            )
        except (ValueError, ArithmeticError, RecursionError) as exc:
            # Pure: the same snapshot fails the same way; the run records it and ends.
            raise ApplicationError(
                f"planning {input.playbook.name} failed on the snapshot observed at "
                f"{snapshot.observed_at.isoformat()}: {exc}",
                type=PLANNING_FAILED,
                non_retryable=True,
            ) from exc
        before = {n.node: figures_of(beliefs, n.node) for n in plan.nodes}
        busy: dict[str, str] = {}
        if self.open_remediations is not None and plan.proposals:
            # Never two remediations of one node at once: the inbox knows every open one, whoever started it.
            busy = await self.open_remediations.open_targets(snapshot.twin_id)
        return PlannedRun(plan=plan, history=where, before=before, busy=busy)

    async def _history(self, snapshot: Snapshot) -> tuple[DemandHistory | None, str]:
        if self.demand_history is None:
            return None, "no demand history: this worker keeps none (held preconditions cannot be shown to hold)"
        try:
            history = await asyncio.wait_for(
                self.demand_history.read(snapshot.twin_id, snapshot.observed_at), DEMAND_HISTORY_TIMEOUT_SECONDS
            )
        except Exception as exc:  # a held precondition then cannot be shown to hold: it fails, closed
            activity.logger.warning(
                "demand history of %r unreadable: %s: %s", snapshot.twin_id, type(exc).__name__, exc
            )
            return None, f"no demand history: reading it failed ({type(exc).__name__}: {exc})"
        return history, f"demand history of {snapshot.twin_id!r} ({len(history)} buckets)"

    @activity.defn
    async def claim_preapproval(self, input: ClaimInput) -> PreapprovalClaim:
        """The pre-approval covering this run, claimed for it alone (idempotent for the same run)."""
        if self.preapprovals is None:
            return PreapprovalClaim(note="this worker keeps no pre-approvals")
        return await self.preapprovals.claim(
            input.playbook, input.version, input.playbook_digest, input.run_id, input.started_at
        )

    @activity.defn
    async def finish_playbook_run(self, report: PlaybookRunReport) -> PlaybookRunReport:
        """Add the after figures from a fresh snapshot, store the report, post its summary; return it."""
        acted = [n.node for n in report.nodes if n.proposal_id is not None]
        after: dict[str, NodeFigures] = {}
        if acted:
            try:
                after = snapshot_figures(await self.twin.latest(), acted)
            except TwinSourceError as exc:
                activity.logger.warning("no after figures for run %s: %s", report.run_id, exc)
        report = report.model_copy(
            update={"nodes": [n.model_copy(update={"after": after.get(n.node)}) for n in report.nodes]}
        )
        if self.runs is not None:
            await self.runs.save(report)  # idempotent by run id; a failure is retried
        await self._post(report)
        return report

    async def _post(self, report: PlaybookRunReport) -> None:
        if self.notifier is None:
            return
        severity: Literal["info", "warning", "critical"] = (
            "info" if report.status == "succeeded" else "critical" if report.status == "failed" else "warning"
        )
        counts = report.counts()
        try:
            await self.notifier.notify(
                Notification(
                    kind=NotificationKind.PLAYBOOK_RUN_FINISHED,
                    remediation_id=report.run_id,
                    title=f"Playbook run {report.playbook} v{report.version}",
                    text=report.summary(),
                    severity=severity,
                    fields={
                        "twin": report.twin_id or "-",
                        "report": f"twinops report {report.run_id}",
                        **{k.replace("_", " "): str(v) for k, v in sorted(counts.items())},
                    },
                )
            )
        except NotifierError as exc:
            # The report is stored; a pager outage does not fail the run.
            activity.logger.warning("summary of run %s not posted: %s", report.run_id, exc)
