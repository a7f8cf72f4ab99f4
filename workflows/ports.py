"""Ports the activities receive by injection, and the messages that cross them.

controller/ supplies the adapters (simulator or webhook actuator, log or webhook
notifier, SQL inbox, SQL demand history). The policy gate's port is `workflows.policy.PolicyGate`, the
ledger's `workflows.audit.AuditLedger`, the twin's `twin.sources.TwinSource`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from agents.forecast import DemandHistory
from twin.actions import Action
from twinops import TwinopsError
from workflows.messages import Message
from workflows.policy import ActionRecord


class StepOutcome(Message):
    """What an actuator did for one idempotency key."""

    idempotency_key: str
    applied: bool = Field(description="False when the key had been applied before (a retry): nothing was redone.")
    undo: Action | None = Field(description="The action that reverts this one; None when it cannot be undone.")
    detail: str = ""


class ActuatorError(TwinopsError, RuntimeError):
    """The estate refused the action (permanent) or could not be reached (transient)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@runtime_checkable
class Actuator(Protocol):
    """Changes the real (or simulated) estate. A repeated idempotency key must be a no-op."""

    async def apply(self, idempotency_key: str, action: Action) -> StepOutcome:
        """Apply `action` once per key; return what undoes it."""
        ...


class NotificationKind(StrEnum):
    """Why a human is being told something."""

    APPROVAL_REQUESTED = "approval_requested"
    ESCALATED = "escalated"
    EXPIRED = "expired"
    ROLLED_BACK = "rolled_back"
    COMPENSATION_FAILED = "compensation_failed"
    COMPLETED = "completed"
    LOOP_BREAKER = "loop_breaker"
    POLICY_DENIED = "policy_denied"
    AUTO_APPROVED = "auto_approved"
    """Sent before an auto-approved plan runs, so someone can still cancel it."""
    LOOP_TICK_FAILED = "loop_tick_failed"
    AUDIT_CHECKPOINT = "audit_checkpoint"  # a signed audit head, published where a database rewrite cannot reach
    PLAYBOOK_RUN_FINISHED = "playbook_run_finished"
    """A playbook run ended: its report's summary (the morning report)."""


class Notification(Message):
    """One message for the humans on call."""

    kind: NotificationKind
    remediation_id: str
    title: str
    text: str
    severity: Literal["info", "warning", "critical"] = "info"
    fields: dict[str, str] = Field(default_factory=dict)


class NotifierError(TwinopsError, RuntimeError):
    """A notification could not be delivered; `permanent` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@runtime_checkable
class Notifier(Protocol):
    """Tells humans (pager, chat, log)."""

    async def notify(self, notification: Notification) -> None:
        """Deliver one notification; raise on failure so the activity retries."""
        ...


class InboxStatus(StrEnum):
    """Where a proposal stands in the approval queue."""

    DENIED = "denied"
    PENDING = "pending"
    ESCALATED = "escalated"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    FAILED = "failed"


class InboxEntry(Message):
    """The approval queue's row for one proposal, projected from its workflow."""

    proposal_id: str
    workflow_id: str
    twin_id: str
    status: InboxStatus
    risk: str
    target: str
    summary: str
    created_at: datetime
    deadline: datetime | None = None
    required_approvals: int = 0
    approvals: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    plan: str = ""
    """The actions in words."""
    approver_groups: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    """What the quorum still lacks, in the approval policy's words."""
    team: str | None = None
    """The owning team of the target node (its `team` tag), when it has one."""


@runtime_checkable
class ApprovalInbox(Protocol):
    """The approval queue's store; the workflow is the source of truth, the inbox its projection."""

    async def upsert(self, entry: InboxEntry) -> None:
        """Insert or replace the entry for `entry.proposal_id`."""
        ...


@runtime_checkable
class ActionHistory(Protocol):
    """What has been done to the estate lately (from the audit trail), for checks at the moment of action."""

    async def actions_since(self, nodes: Sequence[str], since: datetime) -> list[ActionRecord]:
        """Actions started on any of `nodes` at or after `since`, oldest first."""
        ...


@runtime_checkable
class DemandHistoryStore(Protocol):
    """Per-node offered demand, downsampled into fixed buckets and kept for a retention window.

    The deliberate activity reads it for forecasting and records each tick's trusted demand;
    the series never enters a workflow's history. Semantics are `agents.forecast.DemandRecorder`'s:
    a bucket keeps the mean of its observations, an observation not newer than the node's last
    recorded one is ignored (so a retried activity records nothing twice), non-finite or negative
    values are skipped, and buckets older than the retention before the newest observation go.
    """

    async def read(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        """The twin's series (of `nodes`, default all) over the retention window before `now`; empty if unknown."""
        ...

    async def record(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        """Add one observation per node at `observed_at`; return how many were kept."""
        ...


@runtime_checkable
class OpenRemediations(Protocol):
    """Which nodes have a remediation in progress (from the approval inbox, whoever started it)."""

    async def open_targets(self, twin_id: str) -> dict[str, str]:
        """Target node -> proposal id of each open (not yet ended) remediation of the twin."""
        ...
