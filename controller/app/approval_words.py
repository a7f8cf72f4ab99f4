"""What the approval policy requires and what an approval did, in words, for every front end.

The CLI, the JSON API and the web pages say the same sentence for the same state, so the
words live here, below all three (the API may not import the CLI). Standard library only at
module level: the CLI's `--help` imports this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workflows import ApprovalResult, RemediationState
    from workflows.ports import InboxEntry

__all__ = ["approval_sentence", "entry_requirement", "requirement", "state_requirement"]

# Past approval: the quorum was met (or the plan auto-approved) and the plan ran or runs.
_MET_STATUSES = frozenset({"executing", "verifying", "completed", "rolled_back"})
_MET_STAGES = frozenset({"executing", "verifying", "compensating", "completed", "rolled_back"})


def requirement(
    required: int,
    approvals: Sequence[str],
    *,
    groups: Sequence[str] = (),
    pending: Sequence[str] = (),
    still_needed: int | None = None,
    met: bool = False,
    compact: bool = False,
) -> str:
    """What the approval policy requires, in words: how many, from which groups, what is still needed.

    The count alone misleads: with the owning-team rule three approvals may be given of
    two required and the quorum still open, so the policy's own words on what is
    missing (`pending`) are shown whenever there are any.
    """
    if compact:
        head = f"{len(approvals)}/{required}"
    else:
        source = f" from {' or '.join(groups)}" if groups else ""
        head = f"{required} required{source}, {len(approvals)} given"
    if met:
        return head + ("" if compact else "; quorum met")
    if not pending:
        missing = still_needed if still_needed is not None else max(0, required - len(approvals))
        pending = [f"{missing} more needed"] if missing else []
    if not pending:
        return head
    return head + (" · " if compact else "; still needed: ") + "; ".join(pending)


def entry_requirement(e: InboxEntry, compact: bool = False) -> str:
    """The requirement of an inbox entry (the queue's view, without asking the workflow)."""
    return requirement(
        e.required_approvals,
        e.approvals,
        groups=e.approver_groups,
        pending=e.pending,
        met=e.status.value in _MET_STATUSES,
        compact=compact,
    )


def state_requirement(state: RemediationState, entry: InboxEntry) -> str:
    """The requirement from the workflow's live state, the inbox filling in what an older run does not report."""
    return requirement(
        state.required_approvals,
        state.approvals,
        groups=state.approver_groups or entry.approver_groups,
        pending=state.pending or entry.pending,
        still_needed=state.still_needed,
        met=state.stage.value in _MET_STAGES,
    )


def approval_sentence(proposal_id: str, result: ApprovalResult) -> str:
    """What an approver is told, in one sentence: counted or not, and what is still needed."""
    why = "; ".join(result.reasons)
    if result.quorum_met:
        return f"approved proposal {proposal_id}: quorum met, execution starts"
    if result.counted:
        needed = f"still needed: {why}" if why else f"{result.still_needed} more needed"
        return f"approval counted for proposal {proposal_id} ({len(result.approvals)} so far); {needed}"
    return f"approval not counted for proposal {proposal_id}: {why or 'no reason given'}"
