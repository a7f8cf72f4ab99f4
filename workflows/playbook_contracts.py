"""Messages of a playbook run: its input, the report it ends with, and the port the report is kept behind.

A `PlaybookRunWorkflow` (workflows/playbook_run.py) plans one validated playbook over the
twin, hands each node's proposal to a child `RemediationWorkflow` (requester `playbook:NAME`),
and ends with a `PlaybookRunReport`: what ran where, before/after figures, what the policy
denied and why, what waits for approval, what was rolled back. The report is the workflow's
result and is stored (`PlaybookRunStore`) for `twinops report` and the web pages.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import AwareDatetime, Field

from agents.playbook import Playbook, PreconditionResult
from workflows.contracts import PlaybookRef, PreapprovalGrant, Stage, Timeouts
from workflows.messages import Message

__all__ = [
    "NodeFigures",
    "NodeReport",
    "PlaybookRef",
    "PlaybookRunInput",
    "PlaybookRunReport",
    "PlaybookRunStatus",
    "PlaybookRunStore",
    "PreapprovalClaim",
    "PreapprovalStore",
    "RunSkipped",
    "StepReport",
    "Trigger",
    "canonical_digest",
    "playbook_digest",
    "playbook_run_id",
    "playbook_schedule_id",
]

Trigger = Literal["schedule", "manual", "backfill", "finding"]


def playbook_schedule_id(name: str) -> str:
    """The Temporal Schedule id of playbook `name` (`twinops playbooks sync` owns every `playbook-*` schedule)."""
    return f"playbook-{name}"


def canonical_digest(document: object) -> str:
    """SHA-256 hex of a JSON document's canonical text (sorted keys, compact, UTF-8)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def playbook_digest(playbook: Playbook) -> str:
    """The digest of a playbook's JSON: what a schedule and a pre-approval bind."""
    return canonical_digest(playbook.model_dump(mode="json"))


def playbook_run_id(name: str, at: datetime) -> str:
    """The workflow id of a run of `name` started by hand at `at` (scheduled runs get the schedule's id + time)."""
    return f"playbook-run-{name}-{at.strftime('%Y%m%dT%H%M%SZ')}"


class PlaybookRunInput(Message):
    """Start a PlaybookRunWorkflow with the validated playbook itself (a schedule carries the version it synced)."""

    playbook: Playbook
    trigger: Trigger = "schedule"
    requested_by: str | None = None
    """The user who ran it by hand (`twinops playbooks run`), None for a scheduled run."""
    reason: str = ""
    """Why it runs, when something set it off: the findings (`at_risk on order-events`) for a finding trigger."""
    timeouts: Timeouts = Timeouts()
    """Handed to every child remediation: how long a parked step waits for approval, verification windows."""
    approval_key: str | None = None
    """Base64 Ed25519 public key of the approval service, handed to every child remediation."""
    latency_slo_ms: dict[str, float] = Field(default_factory=dict)
    verification_tolerance: float = Field(default=0.05, ge=0)


class NodeFigures(Message):
    """One node's figures at one moment (before the run, or at its end)."""

    observed_at: datetime
    replicas: int
    demand_rps: float | None = None
    """None when the twin has no trusted figure (a gap is never read as zero)."""
    utilization: float | None = None
    p95_ms: float | None = None


class StepReport(Message):
    """One playbook step on one node: the action, and what became of it."""

    name: str
    action: str
    """The action in words (`scale catalog -> 7`), or "" when the step took none."""
    status: Literal["planned", "refused", "skipped"]
    reason: str = ""


NodeOutcome = Literal[
    "not_met",  # a precondition does not hold
    "nothing_to_do",  # the steps change nothing, or one was refused
    "ran",  # executed and verified
    "waiting_approval",  # parked in the SRE queue
    "denied",  # the safety policy said no
    "rolled_back",  # executed, then undone (verification failed, or cancelled)
    "failed",  # a step or a compensation failed
    "rejected",
    "expired",
    "cancelled",
    "not_started",  # the run stopped (max duration, failed compensation) before this node
    "already_open",  # another remediation of the same proposal is open
]


class NodeReport(Message):
    """What the run did on one matching node."""

    node: str
    outcome: NodeOutcome
    summary: str
    """One sentence on what happened and why."""
    preconditions: list[PreconditionResult] = Field(default_factory=list)
    steps: list[StepReport] = Field(default_factory=list)
    proposal_id: str | None = None
    workflow_id: str | None = None
    """The child remediation's workflow id: its trail is `twinops audit show PROPOSAL_ID`."""
    stage: Stage | None = None
    """The child remediation's stage when the run ended (AWAITING_APPROVAL when parked)."""
    risk: str | None = None
    reasons: list[str] = Field(default_factory=list)
    deny_codes: list[str] = Field(default_factory=list)
    compensations_failed: int = 0
    before: NodeFigures | None = None
    after: NodeFigures | None = None
    preapproval_id: str | None = None
    """The pre-approval that covered this node's steps, if one did."""


class RunSkipped(Message):
    """A matching node the run did not plan for (stale or untrusted beliefs, over max_nodes)."""

    node: str
    reason: str


class PreapprovalClaim(Message):
    """What a run's claim of a pre-approval gave: the grant it now holds alone, or why none."""

    grant: PreapprovalGrant | None = None
    note: str = ""
    """In words: which pre-approval the run holds, or why it holds none (none given, used by another run, expired)."""


@runtime_checkable
class PreapprovalStore(Protocol):
    """Pre-approvals of playbook runs; a claim is atomic, so a grant covers one run only."""

    async def claim(
        self, playbook: str, version: int, playbook_digest: str, run_id: str, started_at: datetime
    ) -> PreapprovalClaim:
        """Claim the pre-approval covering a run of this playbook (name, version, content) started at
        `started_at` for `run_id`. A retried claim by the same run gets the same grant; a grant another
        run claimed is never given again."""
        ...


PlaybookRunStatus = Literal["succeeded", "partial", "failed", "waiting_approval"]
"""succeeded: every node it acted on ran and verified (or there was nothing to do); waiting_approval: nothing
failed and something waits in the queue; partial: some nodes were denied, rolled back, rejected or not reached;
failed: the run could not plan, or a compensation failed."""


class PlaybookRunReport(Message):
    """The report of one playbook run (its workflow's result, stored for `twinops report`)."""

    run_id: str
    """The PlaybookRunWorkflow's workflow id."""
    playbook: str
    version: int
    owner: str
    description: str = ""
    trigger: Trigger
    requested_by: str | None = None
    twin_id: str | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime
    observed_at: AwareDatetime | None = None
    """When the snapshot the run planned on was observed."""
    status: PlaybookRunStatus
    stopped: str | None = None
    """Why the run stopped early (max duration, failed compensation, no snapshot), or None."""
    history: str = ""
    """Where the demand history for held preconditions came from, or why there was none."""
    preapproval: str | None = None
    """The pre-approval the run claimed (its id), if any."""
    preapproval_note: str = ""
    """Which pre-approval covered the run, or why none did."""
    nodes: list[NodeReport] = Field(default_factory=list)
    skipped: list[RunSkipped] = Field(default_factory=list)

    def counts(self) -> Counter[str]:
        """How many nodes ended in each outcome."""
        return Counter(n.outcome for n in self.nodes)

    def summary(self) -> str:
        """One line: the playbook, the status, and the outcome counts (the webhook's text)."""
        counts = self.counts()
        parts = ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in sorted(counts)) or "no matching node"
        stop = f"; stopped: {self.stopped}" if self.stopped else ""
        return f"playbook {self.playbook} v{self.version}: {self.status.replace('_', ' ')} ({parts}){stop}"


@runtime_checkable
class PlaybookRunStore(Protocol):
    """Where run reports are kept. `save` is idempotent by run id (the activity that calls it may be retried)."""

    async def save(self, report: PlaybookRunReport) -> None:
        """Insert or replace the report of `report.run_id`."""
        ...

    async def get(self, run_id: str) -> PlaybookRunReport:
        """The report of `run_id`; `controller.core.errors.NotFoundError` when there is none."""
        ...

    async def latest(self, playbook: str | None = None) -> PlaybookRunReport:
        """The newest report (of `playbook`, when given) by `ended_at`; NotFoundError when there is none."""
        ...

    async def list(self, playbook: str | None = None, limit: int = 50) -> list[PlaybookRunReport]:
        """Reports newest first (of `playbook`, when given)."""
        ...
