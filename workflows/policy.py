"""The policy gate's contract: typed inputs and decisions, and the `PolicyGate` port.

Pure pydantic and typing; no I/O. The controller supplies the adapters (Rego
in-process on regorus, or an OPA server); activities receive a `PolicyGate` by
injection and call `evaluate_safety` / `evaluate_approval`.

The inputs serialize (``model_dump(mode="json")``) to exactly the documents the
Rego bundle reads as `input`: `data.twinops.safety.decision` takes a
`SafetyInput`, `data.twinops.approval.decision` an `ApprovalInput`. Every
decision carries the bundle revision and SHA-256 so the audit trail can name the
policy version that said yes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from agents import NodeBelief
from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Node, NodeKind

RiskLevel = Literal["low", "medium", "high"]
RequesterKind = Literal["agent", "playbook", "human"]
ActionOutcome = Literal["executed", "verified", "rolled_back", "verification_failed"]
NonEmptyStr = Annotated[str, Field(min_length=1)]

SAFETY_QUERY = "data.twinops.safety.decision"
APPROVAL_QUERY = "data.twinops.approval.decision"


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _Decision(BaseModel):
    # strict: a decision whose `allow` is the string "true" is malformed, not coerced.
    # extra="ignore": policy authors may add diagnostic fields without breaking the gate.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True, allow_inf_nan=False)


class Requester(_Input):
    """Who proposed the change: an agent, a playbook run or a human."""

    kind: RequesterKind
    id: NonEmptyStr
    on_behalf_of: NonEmptyStr | None = None
    """The user who started a playbook run by hand: their approvals of its steps are self-approvals."""


class AffectedNode(_Input):
    """A node the proposal acts on, as the policy sees it."""

    id: NonEmptyStr
    kind: NodeKind = NodeKind.SERVICE
    tier: str = "standard"
    team: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    replicas: Annotated[int, Field(ge=0)]
    min_replicas: Annotated[int, Field(ge=0)]
    max_replicas: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _bounds(self) -> AffectedNode:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"node {self.id!r}: max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self

    @classmethod
    def from_twin(cls, node: Node | NodeBelief) -> AffectedNode:
        """Describe a twin node (or the agent's belief about one); `tier` and `team` come from its tags."""
        return cls(
            id=node.id if isinstance(node, Node) else node.node,
            kind=node.kind,
            tier=node.tags.get("tier", "standard"),
            team=node.tags.get("team", ""),
            tags=dict(node.tags),
            replicas=node.replicas,
            min_replicas=node.min_replicas,
            max_replicas=node.max_replicas,
        )


def action_node(action: ScaleAction | ShiftTrafficAction | RateLimitAction | RestartAction) -> str:
    """The node an action changes (shift_traffic names it `source`)."""
    return action.source if isinstance(action, ShiftTrafficAction) else action.node


class PolicyProposal(_Input):
    """A planned remediation: what it does, to which nodes, and what it is expected to achieve."""

    id: NonEmptyStr
    plan_hash: NonEmptyStr
    actions: Annotated[list[Action], Field(min_length=1)]
    nodes: list[AffectedNode]
    predicted: dict[str, Any] = Field(default_factory=dict)
    blast_radius: Annotated[float, Field(ge=0.0, le=1.0)]
    fleet_replicas: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Replicas across the whole twin now; None counts only the affected nodes."
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> PolicyProposal:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"node {node.id!r} is listed twice in proposal {self.id!r}")
            seen.add(node.id)
        return self


class ActionRecord(_Input):
    """One past action on a target node, from the audit trail."""

    at: AwareDatetime
    node: NonEmptyStr
    action_type: Literal["scale", "shift_traffic", "rate_limit", "restart"]
    plan_hash: str
    outcome: ActionOutcome


class SafetyInput(_Input):
    """Input of `data.twinops.safety.decision`."""

    proposal: PolicyProposal
    snapshot_age_seconds: Annotated[float, Field(ge=0.0)]
    history: list[ActionRecord] = Field(default_factory=list)
    now: AwareDatetime
    requester: Requester


class Reason(_Decision):
    """Why a decision said no (or what is still missing), gatekeeper-style."""

    code: NonEmptyStr
    msg: str
    details: dict[str, Any] = Field(default_factory=dict)


class SafetyDecision(_Decision):
    """Output of `data.twinops.safety.decision`, stamped with the bundle that produced it."""

    allow: bool
    deny: list[Reason]
    risk: RiskLevel
    required_approvals: Annotated[int, Field(ge=0)]
    approver_groups: list[str]
    auto_approve: bool
    bundle_revision: str = ""
    bundle_sha256: str = ""
    engine: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> SafetyDecision:
        # A decision that contradicts itself is malformed; the gate turns it into a deny.
        if self.allow and self.deny:
            raise ValueError("decision allows but lists deny reasons")
        if not self.allow and not self.deny:
            raise ValueError("decision denies without a reason")
        if self.auto_approve and not self.allow:
            raise ValueError("decision auto-approves a denied proposal")
        return self


class Approver(_Input):
    """A person approving: id, roles (approver groups held) and team."""

    id: NonEmptyStr
    roles: list[str]
    team: str


class PriorApproval(_Input):
    """An approval already recorded for the proposal."""

    approver: Approver
    at: AwareDatetime


class ApprovalInput(_Input):
    """Input of `data.twinops.approval.decision`."""

    approver: Approver
    requester: Requester
    proposal: PolicyProposal
    safety: SafetyDecision
    approvals: list[PriorApproval] = Field(default_factory=list)
    now: AwareDatetime
    expires_at: AwareDatetime


class ApprovalDecision(_Decision):
    """Output of `data.twinops.approval.decision`, stamped with the bundle that produced it."""

    counts: bool
    quorum_met: bool
    reasons: list[Reason] = Field(description="Why this approval does not count; empty when it counts.")
    pending: list[Reason] = Field(default_factory=list, description="What the quorum still lacks.")
    approvals_counted: Annotated[int, Field(ge=0)]
    still_needed: Annotated[int, Field(ge=0)]
    bundle_revision: str = ""
    bundle_sha256: str = ""
    engine: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalDecision:
        if self.counts and self.reasons:
            raise ValueError("approval counts but lists reasons against it")
        if not self.counts and not self.reasons:
            raise ValueError("approval refused without a reason")
        return self


def deny_decision(
    reason_code: str,
    msg: str,
    *,
    bundle_revision: str = "",
    bundle_sha256: str = "",
    engine: str = "",
    details: dict[str, Any] | None = None,
) -> SafetyDecision:
    """A fail-closed safety decision: not allowed, high risk, never auto-approved."""
    return SafetyDecision(
        allow=False,
        deny=[Reason(code=reason_code, msg=msg, details=details or {})],
        risk="high",
        required_approvals=0,
        approver_groups=[],
        auto_approve=False,
        bundle_revision=bundle_revision,
        bundle_sha256=bundle_sha256,
        engine=engine,
    )


def refuse_approval(
    reason_code: str,
    msg: str,
    *,
    bundle_revision: str = "",
    bundle_sha256: str = "",
    engine: str = "",
    details: dict[str, Any] | None = None,
) -> ApprovalDecision:
    """A fail-closed approval decision: the approval does not count and no quorum is met."""
    return ApprovalDecision(
        counts=False,
        quorum_met=False,
        reasons=[Reason(code=reason_code, msg=msg, details=details or {})],
        pending=[],
        approvals_counted=0,
        still_needed=0,
        bundle_revision=bundle_revision,
        bundle_sha256=bundle_sha256,
        engine=engine,
    )


@runtime_checkable
class PolicyGate(Protocol):
    """Asks the Rego bundle for decisions. Implementations never raise: any failure is a deny."""

    async def evaluate_safety(self, input: SafetyInput) -> SafetyDecision:
        """Decide whether a proposal may go ahead, at what risk, with how many approvals."""
        ...

    async def evaluate_approval(self, input: ApprovalInput) -> ApprovalDecision:
        """Decide whether an approval counts and whether the quorum is now met."""
        ...
