"""The approval state of one remediation and the rules its update handlers share.

A plain class (no Temporal decorators), kept out of the workflow class as samples-python's
`updatable_timer_lib.py` keeps timer logic out of its workflow: the `approve`, `reject`
and `request_cancel` handlers and their validators call into it; the workflow's phases
read the verdict. Pure and deterministic: time comes in as an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from workflows.contracts import ApprovalResult, CancelInput, Principal, RemediationInput, Stage
from workflows.decisions import DecisionKind, check_decision
from workflows.policy import Approver, PriorApproval, SafetyDecision

__all__ = ["PENDING_STAGES", "ApprovalBook", "Verdict"]

PENDING_STAGES = (Stage.AWAITING_APPROVAL, Stage.ESCALATED)
"""Stages in which a human decision can still be taken."""

Verdict = Literal["approved", "rejected", "withdrawn"]


def approver_of(principal: Principal) -> Approver:
    """The approval policy's view of a principal."""
    return Approver(id=principal.id, roles=list(principal.roles), team=principal.team or "")


class ApprovalBook:
    """Approvals counted so far, the verdict, and who rejected or cancelled (and why)."""

    def __init__(self, input: RemediationInput) -> None:
        self._input = input
        self.approvals: list[PriorApproval] = []
        self.verdict: Verdict | None = None
        self.nonces: set[str] = set()
        """Nonces of signed decisions already counted: a captured decision cannot be sent twice."""
        self.pending: list[str] = []
        """What the quorum still lacks, in the approval policy's words (from its last answer)."""
        self.still_needed: int | None = None
        self.cancel_request: CancelInput | None = None
        self.decided: tuple[str, str] | None = None
        """(who, why) of a human rejection or cancellation: the agent must not ask again at once."""

    @property
    def approver_ids(self) -> list[str]:
        """Who approved, in order."""
        return [a.approver.id for a in self.approvals]

    def has_approved(self, who: str) -> bool:
        """Whether `who` already counts."""
        return any(a.approver.id == who for a in self.approvals)

    def count(self, principal: Principal, at: datetime, nonce: str | None) -> None:
        """Add one approval the policy counted."""
        if nonce is not None:
            self.nonces.add(nonce)
        self.approvals.append(PriorApproval(approver=approver_of(principal), at=at))

    def check_call(self, stage: Stage, who: str, now: datetime, expires_at: datetime | None) -> None:
        """Raise ValueError unless a decision may be taken now (pending, undecided, unexpired, named)."""
        pid = self._input.proposal.id
        if stage not in PENDING_STAGES:
            raise ValueError(f"proposal {pid!r} is not pending approval (stage {stage.value})")
        if self.verdict is not None:
            raise ValueError(f"proposal {pid!r} is already decided ({self.verdict})")
        if expires_at is not None and now >= expires_at:
            raise ValueError(f"proposal {pid!r} expired at {expires_at.isoformat()}")
        if not who:
            raise ValueError("an approver id is required")

    def check_signature(self, kind: DecisionKind, principal: Principal, text: str, signed: Any, now: datetime) -> None:
        """Raise ValueError unless the approval service signed exactly this decision (runs that have its key)."""
        key = self._input.approval_key
        if key is None:
            return  # a run from before keys were in inputs: the handler checks through an activity
        p = self._input.proposal
        check_decision(
            signed,
            public_key_b64=key,
            kind=kind,
            proposal_id=p.id,
            plan_hash=p.plan_hash,
            principal=principal,
            text=text,
            now=now,
        )
        if signed.nonce in self.nonces:
            raise ValueError("this signed decision was used already")

    def result(
        self, counted: bool, reasons: list[str], decision: SafetyDecision | None, still_needed: int | None = None
    ) -> ApprovalResult:
        """What the approver is told."""
        required = decision.required_approvals if decision else 0
        needed = still_needed if still_needed is not None else max(0, required - len(self.approvals))
        return ApprovalResult(
            counted=counted,
            quorum_met=self.verdict == "approved",
            approvals=self.approver_ids,
            still_needed=0 if self.verdict == "approved" else needed,
            reasons=reasons,
        )

    def requirement_gap(self, now: SafetyDecision) -> str | None:
        """Why the approvals given no longer suffice under the policy of now (a freeze began), or None."""
        if now.auto_approve:
            return None
        groups = set(now.approver_groups)
        counted = [a for a in self.approvals if not groups or groups & set(a.approver.roles)]
        if len(counted) >= now.required_approvals:
            return None
        wanted = f" from {', '.join(sorted(groups))}" if groups else ""
        return (
            f"the policy now requires {now.required_approvals} approval(s){wanted} and "
            f"{len(counted)} of those given qualify; the requirement grew since approval"
        )
