"""Decisions that contradict themselves: the gate refuses them as malformed (fail closed).

A policy answer is only as trustworthy as it is coherent: `quorum_met: true` beside a
pending reason, or an auto-approval that needs approvals, means a rule is broken,
and the gate must not pick the half it likes. These checks run in the gate, not in
the decision models, because the models also read decisions back from running
workflows' histories, which must keep replaying.
"""

from __future__ import annotations

from workflows.policy import ApprovalDecision, SafetyDecision


def contradictions(decision: SafetyDecision | ApprovalDecision) -> list[str]:
    """What the decision says against itself; empty when it is coherent."""
    if isinstance(decision, SafetyDecision):
        return _safety(decision)
    return _approval(decision)


def _safety(d: SafetyDecision) -> list[str]:
    found: list[str] = []
    if d.allow and d.deny:
        found.append(f"allow is true but deny lists {[r.code for r in d.deny]}")
    if not d.allow and not d.deny:
        found.append("allow is false but deny gives no reason")
    if d.auto_approve and not d.allow:
        found.append("auto_approve is true for a proposal that is not allowed")
    if d.required_approvals < 0:
        found.append(f"required_approvals is negative ({d.required_approvals})")
    if d.auto_approve and d.required_approvals > 0:
        found.append(f"auto_approve is true but {d.required_approvals} approval(s) are required")
    if d.allow and not d.auto_approve and d.required_approvals == 0:
        found.append("allowed, not auto-approved, yet no approval is required")
    return found


def _approval(d: ApprovalDecision) -> list[str]:
    found: list[str] = []
    if d.counts and d.reasons:
        found.append(f"counts is true but reasons list {[r.code for r in d.reasons]}")
    if not d.counts and not d.reasons:
        found.append("counts is false but no reason is given")
    if d.quorum_met and not d.counts:
        found.append("quorum_met is true but this approval does not count")
    if d.quorum_met and d.pending:
        found.append(f"quorum_met is true but pending lists {[r.code for r in d.pending]}")
    if d.quorum_met and d.still_needed > 0:
        found.append(f"quorum_met is true but {d.still_needed} more approval(s) are needed")
    if d.counts and d.approvals_counted < 1:
        found.append("counts is true but no approval is counted")
    if d.approvals_counted < 0 or d.still_needed < 0:
        found.append("a negative count")
    if d.still_needed > 0 and not d.pending:
        found.append(f"{d.still_needed} more approval(s) needed but nothing is pending")
    if d.counts and not d.quorum_met and not d.pending:
        found.append("the approval counts and the quorum is not met, but nothing is pending")
    return found
