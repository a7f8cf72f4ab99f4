"""Messages of the workflows: inputs, results, update arguments and the live state query.

Every timeout default lives here too, so the worker, the starters and the tests agree on
them (the task queue name is a setting: `Settings.temporal_task_queue`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from agents import Proposal
from twin.actions import Action
from workflows.messages import Message
from workflows.policy import ActionRecord, Requester


class Timeouts(Message):
    """Durations (seconds) a remediation waits; from settings or the policy."""

    approval_seconds: float = Field(default=3600.0, gt=0)
    """Pending this long without quorum: escalate."""
    expiry_seconds: float = Field(default=3600.0, gt=0)
    """Escalated this long without quorum: expire."""
    verification_window_seconds: float = Field(default=60.0, ge=0)
    """Time the estate gets to settle before the goals are checked."""
    verification_settle_seconds: float = Field(default=120.0, ge=0)
    """After the window, how long the goals may take to be met (checked every few seconds) before the
    fix counts as failed: a backlog released by the fix drains for a while. 0 checks once."""


def remediation_workflow_id(proposal_id: str) -> str:
    """The workflow id of a proposal's remediation: one open run per proposal (the agent loop's)."""
    return f"remediation-{proposal_id}"


def actor_of(requester: Requester) -> str:
    """The audit actor string of a requester: agent:NAME, playbook:NAME or user:ID."""
    prefix = {"agent": "agent", "playbook": "playbook", "human": "user"}[requester.kind]
    return f"{prefix}:{requester.id}"


class Principal(Message):
    """An authenticated human acting on a proposal (resolved from an API token)."""

    id: str
    roles: list[str] = Field(default_factory=list)
    team: str | None = None


class SignedDecision(Message):
    """One human decision on one proposal, signed by the approval service (see workflows.decisions)."""

    kind: Literal["approve", "reject", "cancel"]
    proposal_id: str
    plan_hash: str
    principal: Principal
    text: str = ""
    """The approval comment, the rejection or cancellation reason."""
    issued_at: AwareDatetime
    nonce: str = Field(min_length=16)
    key_id: str = ""
    """Fingerprint of the signing key; informational, the key itself comes from the workflow input."""
    signature: str = ""
    """Base64 Ed25519 signature over `signing_bytes()`."""

    def signing_bytes(self) -> bytes:
        """The canonical bytes signed: every field but the signature, sorted keys, no whitespace."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


PREAPPROVAL_PREFIX = "preapproval:"
"""A pre-approval's signed approvals name `preapproval:ID` where a decision names its proposal."""


class PreapprovalGrant(Message):
    """Approvals given ahead of time to one playbook run (`twinops playbooks preapprove`).

    Each approval is a decision the approval service signed over `binding()`: this grant's id,
    the playbook's name, version and content digest, and the window. A run claims the grant once
    (the store refuses a second claim); a child remediation counts its approvals through the
    approval policy (quorum, groups, no self-approval) like approvals sent at the time.
    """

    id: str
    playbook: str
    version: int
    playbook_digest: str
    """SHA-256 of the playbook's canonical JSON: an edited playbook is not what was approved."""
    run_at: AwareDatetime
    """The scheduled run it is for; a run starting up to `PREAPPROVAL_EARLY` before it is covered too."""
    expires_at: AwareDatetime
    approvals: list[SignedDecision] = Field(default_factory=list)

    def binding(self) -> str:
        """What each approval's signature binds (it stands where a decision's plan hash stands)."""
        body = {
            "id": self.id,
            "playbook": self.playbook,
            "version": self.version,
            "playbook_digest": self.playbook_digest,
            "run_at": self.run_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def subject(self) -> str:
        """What each approval's signature names as its proposal."""
        return PREAPPROVAL_PREFIX + self.id


class PlaybookRef(Message):
    """Which playbook run a remediation belongs to: recorded in its trail, shown in the queue."""

    name: str
    version: int
    run_id: str
    """The PlaybookRunWorkflow's workflow id."""
    steps: list[str] = Field(default_factory=list)
    """The playbook steps this remediation carries, by name."""
    human_approval: bool = False
    """A step says `approval: always`: a human approves even where the safety policy would auto-approve."""
    deadline: AwareDatetime | None = None
    """When the run reaches its maximum duration: a cancel through Temporal after it is the run stopping."""
    expect: list[str] = Field(default_factory=list)
    """The steps' `verify.expect` conditions: each must hold on the target, besides the plan's goals."""
    requested_by: str | None = None
    """The user who started the run by hand: none of their approvals count for its steps (no self-approval)."""
    digest: str = ""
    """SHA-256 of the run's playbook (canonical JSON): a pre-approval covers exactly that content."""
    started_at: AwareDatetime | None = None
    """When the run started: a pre-approval covers runs that start in its window."""
    preapproval: PreapprovalGrant | None = None
    """The pre-approval the run claimed: its approvals are counted before the step parks."""


class RemediationInput(Message):
    """Start a RemediationWorkflow for one proposal."""

    proposal: Proposal
    requester: Requester
    timeouts: Timeouts = Timeouts()
    recent_actions: list[ActionRecord] = Field(default_factory=list)
    latency_slo_ms: dict[str, float] = Field(default_factory=dict)
    """p95 SLOs (from the desires) the affected nodes must meet after the fix."""
    verification_tolerance: float = Field(default=0.05, ge=0)
    """How much worse than before (relative) a node may look after the fix before it counts as worse."""
    notify_parent: bool = True
    """Signal the parent agent loop (if any) with the outcome when done."""
    approval_key: str | None = None
    """Base64 Ed25519 public key of the approval service: only decisions it signed count.

    None only in runs started by release 0.1.0, before decisions were signed; those check
    the signature through an activity against the worker's configured key instead.
    """
    playbook: PlaybookRef | None = None
    """The playbook run this remediation belongs to (release 0.5.0): named in its trail; with
    `human_approval`, a human approves even what the policy would auto-approve; the run is told
    when the proposal parks for approval."""


class Stage(StrEnum):
    """Where a remediation is in its life."""

    PROPOSED = "proposed"
    EVALUATING = "evaluating"
    AWAITING_APPROVAL = "awaiting_approval"
    ESCALATED = "escalated"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    DENIED = "denied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


TERMINAL_STAGES = frozenset(
    {
        Stage.COMPLETED,
        Stage.ROLLED_BACK,
        Stage.DENIED,
        Stage.REJECTED,
        Stage.EXPIRED,
        Stage.CANCELLED,
        Stage.FAILED,
    }
)


class ApproveInput(Message):
    """Argument of the `approve` update."""

    principal: Principal
    comment: str = ""
    signed: SignedDecision | None = None
    """The approval service's signature over this decision; unsigned approvals are refused."""


class RejectInput(Message):
    """Argument of the `reject` update."""

    principal: Principal
    reason: str = Field(min_length=1)
    signed: SignedDecision | None = None
    """The approval service's signature over this decision; unsigned rejections are refused."""


class CancelInput(Message):
    """Argument of the `request_cancel` update: who cancels and why, sent before Temporal's cancel."""

    principal: Principal
    reason: str = Field(min_length=1)
    signed: SignedDecision | None = None


class DecisionCheckInput(Message):
    """Check a signed decision against the worker's approval key (runs started before keys were in inputs)."""

    signed: SignedDecision | None
    kind: Literal["approve", "reject", "cancel"]
    proposal_id: str
    plan_hash: str
    principal: Principal
    text: str


class ApprovalResult(Message):
    """What the approver is told: did it count, is the quorum met, what is still needed."""

    counted: bool
    quorum_met: bool
    approvals: list[str]
    still_needed: int
    reasons: list[str] = Field(default_factory=list)


class StepState(Message):
    """One executed step."""

    index: int
    action: Action
    idempotency_key: str
    applied: bool
    compensation: Action | None


class RemediationState(Message):
    """The live state returned by the `state` query."""

    proposal_id: str
    stage: Stage
    risk: str | None = None
    required_approvals: int = 0
    approvals: list[str] = Field(default_factory=list)
    deadline: datetime | None = None
    steps_done: list[StepState] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    """The plan, step by step."""
    policy_reasons: list[str] = Field(default_factory=list)
    """What the safety policy said (deny reasons), in words."""
    approver_groups: list[str] = Field(default_factory=list)
    """Groups an approver must belong to (from the safety decision)."""
    pending: list[str] = Field(default_factory=list)
    """The approval policy's words on what the quorum still lacks (groups, owning team)."""
    still_needed: int | None = None
    """Approvals still needed, as the approval policy counts them (None before the first answer)."""
    cancelled_by: str | None = None
    plan_hash: str = ""


class RemediationResult(Message):
    """How a remediation ended."""

    proposal_id: str
    target: str
    plan_hash: str
    stage: Stage
    actions: list[Action] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    steps_applied: int = 0
    compensations_failed: int = 0
    decided_by: str | None = None
    """Who rejected or cancelled it (None when nobody did, or a release before 0.2.0 ran it)."""
    decision_reason: str | None = None
    deny_codes: list[str] = Field(default_factory=list)
    """The safety policy's reason codes when it denied (at the proposal or at the moment of action)."""
    hold_seconds: float | None = None
    """How long the policy asks machines not to propose this plan again (the loop breaker's window)."""
    preapproval_id: str | None = None
    """The pre-approval whose approvals met the quorum (a playbook run's step), if one did."""


class VerifyInput(Message):
    """Check the goals the plan promised against a fresh snapshot."""

    proposal: Proposal
    tolerance: float
    latency_slo_ms: dict[str, float] = Field(default_factory=dict)
    expect: list[str] = Field(default_factory=list)
    """Playbook conditions (`demand_utilization < 0.8`) that must also hold on the proposal's target."""


class VerifyResult(Message):
    """Verdict of a verification, with the evidence."""

    met: bool
    worse: bool
    observed_at: datetime
    findings: list[str]
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class StepInput(Message):
    """Apply one action once per idempotency key."""

    idempotency_key: str
    action: Action
    remediation_id: str
