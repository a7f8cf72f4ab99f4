"""How the approval commands show things: the queue table, a remediation's state.

The requirement and approval sentences are `controller.app.approval_words`, shared with the API
and the pages (re-exported here for the commands).

Rich and the standard library only at module level: `--help` imports this through `approvals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from controller.app.approval_words import approval_sentence, entry_requirement, requirement, state_requirement
from controller.cli._common import console

if TYPE_CHECKING:
    from workflows import RemediationState
    from workflows.ports import InboxEntry

__all__ = [
    "approval_sentence",
    "entry_requirement",
    "print_state",
    "queue_table",
    "requirement",
    "short_ids",
    "state_json",
]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%MZ") if value else "-"


def short_ids(ids: Sequence[str], at_least: int = 10) -> dict[str, str]:
    """Each id's shortest prefix (of `at_least` characters or more) that no other id here shares."""
    shown: dict[str, str] = {}
    for i in ids:
        n = min(at_least, len(i))
        while n < len(i) and any(o != i and o.startswith(i[:n]) for o in ids):
            n += 1
        shown[i] = i[:n]
    return shown


def queue_table(entries: list[InboxEntry]) -> Table:
    """The approval queue as a table: one line per proposal at any width (cut cells end in an ellipsis).

    Ids are shown as their shortest unique prefix (what `approve`, `show` and `audit` accept);
    `queue --json` has everything in full.
    """
    table = Table(
        title="approval queue",
        title_justify="left",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    # Short columns keep their width; the two free-text columns share what is left (ratio).
    table.add_column("proposal", no_wrap=True)
    for name, width in (("status", 9), ("risk", 6), ("target", 10), ("deadline", 11)):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=width)
    table.add_column("approvals", no_wrap=True, overflow="ellipsis", ratio=1, min_width=8)
    table.add_column("summary", no_wrap=True, overflow="ellipsis", ratio=1, min_width=8)
    ids = short_ids([e.proposal_id for e in entries])
    for e in entries:
        table.add_row(
            ids[e.proposal_id],
            e.status.value,
            e.risk,
            e.target,
            e.deadline.strftime("%m-%d %H:%M") if e.deadline else "-",
            entry_requirement(e, compact=True),
            " ".join(e.summary.split()),
        )
    return table


def _describe(action: Any) -> str:
    from twin.actions import describe

    return describe(action)


def state_json(state: RemediationState, entry: InboxEntry) -> dict[str, Any]:
    """`show --json`: the workflow's state, the inbox's plan and requirement words, nothing cut."""
    data: dict[str, Any] = state.model_dump(mode="json")
    data["plan"] = _plan(state, entry)
    data["target"] = entry.target
    data["summary"] = entry.summary
    data["requirement"] = state_requirement(state, entry)
    return data


def _plan(state: RemediationState, entry: InboxEntry) -> list[str]:
    """The actions in words: from the workflow's state, else the inbox's description."""
    if state.actions:
        return [_describe(a) for a in state.actions]
    return [line.strip() for line in entry.plan.splitlines() if line.strip()]


def _verdict(state: RemediationState) -> str:
    stage = state.stage.value
    if stage in ("proposed", "evaluating"):
        return "not evaluated yet"
    if stage == "denied":
        return "denied"
    return f"allowed, risk {state.risk or '-'}" + ("" if state.policy_reasons else ", no objections")


def print_state(state: RemediationState, entry: InboxEntry, to: Console = console) -> None:
    """`show`: stage, why, the plan in words, the policy's reasons, what approval still needs, steps done."""
    out = to.print
    out(f"[bold]{state.proposal_id}[/]: {state.stage.value}, risk {state.risk or '-'}, target {entry.target}")
    out(f"why: {' '.join(entry.summary.split())}", highlight=False, overflow="fold")
    plan = _plan(state, entry)
    out("plan:" if plan else "plan: (not known yet)")
    for i, line in enumerate(plan, 1):
        out(f"  {i}. {line}", highlight=False, overflow="fold")
    out(f"policy: {_verdict(state)}", highlight=False)
    for reason in state.policy_reasons:
        out(f"  - {reason}", highlight=False, overflow="fold")
    other = [r for r in state.reasons if r not in state.policy_reasons]
    if other:
        out("notes:", highlight=False)
        for reason in other:
            out(f"  - {reason}", highlight=False, overflow="fold")
    out(f"approvals: {state_requirement(state, entry)}", highlight=False, overflow="fold")
    if state.approvals:
        out(f"  given by {', '.join(state.approvals)}", highlight=False)
    out(f"deadline: {_when(state.deadline)}", highlight=False)
    for step in state.steps_done:
        undo = f"; undo: {_describe(step.compensation)}" if step.compensation else ""
        done = "applied" if step.applied else "already applied (retry)"
        out(f"  step {step.index}: {_describe(step.action)} ({done}{undo})", highlight=False, overflow="fold")
