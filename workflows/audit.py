"""The audit event contract and the ledger port: pure pydantic and typing, no I/O.

Workflows record every step of a remediation through an activity that holds an
`AuditLedger`; the controller supplies the SQL implementation. An event is
validated here, before it reaches any store: an unknown kind, a payload that does
not fit its kind, a malformed actor or a naive timestamp is rejected with a
message that names the field.

Beyond the kinds listed in the audit issue there are two more, because the loop
has outcomes the list could not express without overloading another kind:
`verification_failed` (the twin says the goal was not met, which starts the
rollback; `verified` stays an unambiguous "it worked") and `cancelled` (an
operator or a superseding intention stopped a remediation before it finished).
A rollback is the `compensation_*` events followed by `completed` with
outcome `rolled_back`, so it needs no kind of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from twinops import TwinopsError

__all__ = [
    "ACTOR_PATTERN",
    "PAYLOAD_MODELS",
    "ApprovalRequestedPayload",
    "ApprovedPayload",
    "AuditEventConflict",
    "AuditEventInput",
    "AuditLedger",
    "AuditRecord",
    "CancelledPayload",
    "CompensatedPayload",
    "CompensationFailedPayload",
    "CompensationStartedPayload",
    "CompletedPayload",
    "DetectedPayload",
    "EscalatedPayload",
    "EventKind",
    "ExpiredPayload",
    "PlaybookRunFinishedPayload",
    "PlaybookRunStartedPayload",
    "PolicyEvaluatedPayload",
    "ProposedPayload",
    "RejectedPayload",
    "StepFailedPayload",
    "StepStartedPayload",
    "StepSucceededPayload",
    "VerificationFailedPayload",
    "VerifiedPayload",
]

ACTOR_PATTERN = r"^(agent:[A-Za-z0-9_.\-]+|user:[^\s]+|playbook:[A-Za-z0-9_.\-]+|system)$"
_ID_PATTERN = r"^[A-Za-z0-9._:/@\-]+$"
_SHA256_HEX = r"^[0-9a-f]{64}$"


class EventKind(StrEnum):
    """Everything that can happen in the life of a remediation or a playbook run."""

    DETECTED = "detected"
    PROPOSED = "proposed"
    POLICY_EVALUATED = "policy_evaluated"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"
    STEP_STARTED = "step_started"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification_failed"
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    COMPLETED = "completed"
    PLAYBOOK_RUN_STARTED = "playbook_run_started"
    PLAYBOOK_RUN_FINISHED = "playbook_run_finished"


class _Payload(BaseModel):
    """Base of every payload: frozen, strict about field names (a typo is an error, not data).

    `details` is the escape hatch for facts that belong to another module's schema.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    details: dict[str, Any] = Field(default_factory=dict)


class DetectedPayload(_Payload):
    """A detector found a present or predicted bottleneck."""

    twin_id: str
    observed_at: datetime | None = None
    constraint: str | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    snapshot_digest: str | None = None


class ProposedPayload(_Payload):
    """The planner's proposal: what was believed, the plan, what else was considered and why."""

    beliefs: dict[str, Any]
    plan: dict[str, Any]
    alternatives: list[dict[str, Any]] = Field(default_factory=list)
    rationale: str
    predicted: dict[str, Any] = Field(default_factory=dict)
    intention: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] | None = None
    """The affected part of the graph and its utilization history (`agents.ProposalContext` in
    JSON form) for the approval UI; None for proposals made before release 0.3.0."""


class PolicyEvaluatedPayload(_Payload):
    """The policy gate's verdict and exactly which bundle produced it."""

    input_digest: str = Field(pattern=_SHA256_HEX, description="SHA-256 hex of the canonical policy input.")
    allow: bool
    decision: dict[str, Any] = Field(description="The structured decision, reasons included.")
    bundle_revision: str
    bundle_sha256: str = Field(pattern=_SHA256_HEX)
    engine: str | None = None


class ApprovalRequestedPayload(_Payload):
    """The proposal entered the approval inbox."""

    approval_id: str
    required_approvals: int = Field(default=1, ge=0)
    expires_at: datetime | None = None
    summary: str = ""


class ApprovedPayload(_Payload):
    """A human (or an auto-approve rule) approved; `rule` is the approval rule that counted it."""

    by: str
    comment: str = ""
    rule: str


class RejectedPayload(_Payload):
    """A human rejected; the comment is the reason."""

    by: str
    comment: str
    rule: str


class ExpiredPayload(_Payload):
    """Nobody decided in time."""

    approval_id: str | None = None
    waited_seconds: float = Field(ge=0)


class EscalatedPayload(_Payload):
    """The approval timed out once and was escalated."""

    to: str
    reason: str = ""


class CancelledPayload(_Payload):
    """The remediation was stopped before it finished."""

    by: str
    reason: str = ""


class StepStartedPayload(_Payload):
    """An execution step began."""

    step_id: str
    action: dict[str, Any]
    idempotency_key: str


class StepSucceededPayload(_Payload):
    """An execution step finished."""

    step_id: str
    result: dict[str, Any] = Field(default_factory=dict)


class StepFailedPayload(_Payload):
    """An execution step failed."""

    step_id: str
    error: str
    retryable: bool = False


class VerifiedPayload(_Payload):
    """The twin confirmed the goal after the verification window."""

    goal: dict[str, Any] = Field(default_factory=dict)
    observed: dict[str, Any] = Field(default_factory=dict)


class VerificationFailedPayload(_Payload):
    """The twin says the goal was not met (or things got worse); rollback follows."""

    reason: str
    goal: dict[str, Any] = Field(default_factory=dict)
    observed: dict[str, Any] = Field(default_factory=dict)


class CompensationStartedPayload(_Payload):
    """A compensating action began, undoing `step_id`."""

    step_id: str
    action: dict[str, Any]


class CompensatedPayload(_Payload):
    """A compensating action finished."""

    step_id: str
    result: dict[str, Any] = Field(default_factory=dict)


class CompensationFailedPayload(_Payload):
    """A compensating action failed: a human must look."""

    step_id: str
    error: str


class CompletedPayload(_Payload):
    """The remediation reached its end."""

    outcome: Literal["succeeded", "rolled_back", "denied", "rejected", "expired", "cancelled", "failed"]
    summary: str = ""


class PlaybookRunStartedPayload(_Payload):
    """A playbook run began (scheduled or by hand)."""

    playbook: str
    trigger: Literal["schedule", "manual", "backfill", "finding"] = "schedule"
    parameters: dict[str, Any] = Field(default_factory=dict)


class PlaybookRunFinishedPayload(_Payload):
    """A playbook run ended."""

    playbook: str
    outcome: Literal["succeeded", "partial", "failed", "waiting_approval"]
    remediations: list[str] = Field(default_factory=list)
    summary: str = ""


PAYLOAD_MODELS: dict[EventKind, type[_Payload]] = {
    EventKind.DETECTED: DetectedPayload,
    EventKind.PROPOSED: ProposedPayload,
    EventKind.POLICY_EVALUATED: PolicyEvaluatedPayload,
    EventKind.APPROVAL_REQUESTED: ApprovalRequestedPayload,
    EventKind.APPROVED: ApprovedPayload,
    EventKind.REJECTED: RejectedPayload,
    EventKind.EXPIRED: ExpiredPayload,
    EventKind.ESCALATED: EscalatedPayload,
    EventKind.CANCELLED: CancelledPayload,
    EventKind.STEP_STARTED: StepStartedPayload,
    EventKind.STEP_SUCCEEDED: StepSucceededPayload,
    EventKind.STEP_FAILED: StepFailedPayload,
    EventKind.VERIFIED: VerifiedPayload,
    EventKind.VERIFICATION_FAILED: VerificationFailedPayload,
    EventKind.COMPENSATION_STARTED: CompensationStartedPayload,
    EventKind.COMPENSATED: CompensatedPayload,
    EventKind.COMPENSATION_FAILED: CompensationFailedPayload,
    EventKind.COMPLETED: CompletedPayload,
    EventKind.PLAYBOOK_RUN_STARTED: PlaybookRunStartedPayload,
    EventKind.PLAYBOOK_RUN_FINISHED: PlaybookRunFinishedPayload,
}


class AuditEventInput(BaseModel):
    """One event as a workflow records it.

    `payload` may be given as the kind's payload model or as a plain dict; either
    way it is validated against the kind and stored as its JSON form (a dict), so
    the event crosses Temporal's data converter unchanged. `event_id` must be
    stable across retries (derive it from workflow id + step): it is what makes
    `AuditLedger.append` idempotent. A playbook run's events use the run id as
    `remediation_id`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=200, pattern=_ID_PATTERN)
    time: datetime
    remediation_id: str = Field(min_length=1, max_length=200)
    workflow_id: str | None = Field(default=None, max_length=400)
    run_id: str | None = Field(default=None, max_length=200)
    actor: str = Field(pattern=ACTOR_PATTERN, max_length=200)
    kind: EventKind
    target_nodes: tuple[str, ...] = ()
    payload: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time must carry a timezone (naive timestamps are ambiguous)")
        return value.astimezone(UTC)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> object:
        if isinstance(value, str) and value not in EventKind.__members__.values():
            known = ", ".join(k.value for k in EventKind)
            raise ValueError(f"unknown event kind {value!r}; known kinds: {known}")
        return value

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_as_dict(cls, value: object) -> object:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value

    @model_validator(mode="after")
    def _payload_fits_kind(self) -> AuditEventInput:
        model = PAYLOAD_MODELS[self.kind]
        try:
            parsed = model.model_validate(self.payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"payload does not fit kind {self.kind.value!r} ({model.__name__}): {problems}") from None
        # Store the normalized JSON form so equal content always serializes identically.
        object.__setattr__(self, "payload", parsed.model_dump(mode="json"))
        return self

    def typed_payload(self) -> _Payload:
        """The payload as its kind's model."""
        return PAYLOAD_MODELS[self.kind].model_validate(self.payload)


class AuditRecord(AuditEventInput):
    """An event as the ledger holds it: its position in the log and its RFC 6962 leaf hash (hex)."""

    seq: int = Field(ge=0, description="Position in the log, from 0; equals the Merkle leaf index.")
    leaf_hash: str = Field(pattern=_SHA256_HEX)

    def as_input(self) -> AuditEventInput:
        """The event without its ledger position."""
        return AuditEventInput.model_validate(self.model_dump(exclude={"seq", "leaf_hash"}))


class AuditEventConflict(TwinopsError):  # noqa: N818 - named for what happened, like the port's other nouns
    """Raised by `AuditLedger.append` when an event id is already recorded with different content.

    Retrying cannot help: an activity turns it into a non-retryable failure. The SQL
    ledger raises `controller.audit.EventConflictError`, a `LedgerConflictError` that is also one of these.
    """


@runtime_checkable
class AuditLedger(Protocol):
    """The append-only, verifiable decision trail."""

    async def append(self, event: AuditEventInput) -> AuditRecord:
        """Record `event`. Same event id and same content again returns the existing record;
        same id with different content raises `AuditEventConflict`."""
        ...

    async def trail(self, remediation_id: str) -> list[AuditRecord]:
        """Every event of one remediation, in log order."""
        ...
