"""What the approval UI reads from a remediation: the proposal's context on record, the owning team in the queue.

A real RemediationWorkflow on the dev server, the real SQLite ledger and inbox: the `proposed`
event carries the proposal's context in the approval API's JSON shape, and every inbox write
names the target node's team (its `team` tag), or none when the node has no such tag.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents import Proposal
from controller.adapters.inbox import SqlApprovalInbox
from controller.core.errors import NotFoundError
from tests.workflows.conftest import Stack, eventually, signed_update
from tests.workflows.test_remediation import ALICE, start, wait_stage
from workflows import Stage
from workflows.audit import EventKind
from workflows.ports import InboxEntry, InboxStatus

pytestmark = pytest.mark.integration


def inbox_of(stack: Stack) -> SqlApprovalInbox:
    assert isinstance(stack.services.inbox, SqlApprovalInbox)
    return stack.services.inbox


async def proposed_payload(stack: Stack, proposal_id: str) -> dict[str, Any]:
    trail = await stack.services.ledger.trail(proposal_id)
    return next(r.payload for r in trail if r.kind is EventKind.PROPOSED)


async def entry_with(stack: Stack, proposal_id: str, status: InboxStatus) -> InboxEntry:
    """The inbox entry once it has `status`. The stage query can run ahead of the inbox write
    (the workflow sets AWAITING_APPROVAL, then its activity writes the row), so "not there yet"
    is waited on like any other value."""
    inbox = inbox_of(stack)

    async def probe() -> InboxEntry | None:
        try:
            return await inbox.aget(proposal_id)
        except NotFoundError:
            return None

    entry = await eventually(probe, lambda e: e is not None and e.status == status)
    assert entry is not None
    return entry


async def test_the_proposed_event_carries_the_context_and_the_queue_names_the_team(stack: Stack) -> None:
    proposal = stack.proposal()
    assert proposal.context is not None
    team = next(b for b in proposal.beliefs_used if b.node == proposal.target).tags["team"]
    handle = await start(stack, proposal)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)

    context = (await proposed_payload(stack, proposal.id))["context"]
    assert context == proposal.context.model_dump(mode="json")
    assert set(context) == {"nodes", "edges", "history", "target_utilization"}
    assert {n["id"] for n in context["nodes"]} >= {proposal.target, *proposal.plan.predicted}
    assert all(
        set(n) == {"id", "kind", "demand_utilization", "replicas", "constraint", "hidden"} for n in context["nodes"]
    )
    assert all(set(e) == {"source", "target", "ratio"} for e in context["edges"])
    assert set(context["history"]) == {n["id"] for n in context["nodes"]}
    for points in context["history"].values():
        assert points, "every context node has at least the sample of the snapshot the proposal came from"
        assert all(len(point) == 2 and isinstance(point[0], str) for point in points)

    assert (await entry_with(stack, proposal.id, InboxStatus.PENDING)).team == team
    await signed_update(stack.services.signer, handle, "reject", ALICE, "not now")
    assert (await handle.result()).stage == Stage.REJECTED
    assert (await entry_with(stack, proposal.id, InboxStatus.REJECTED)).team == team


async def test_a_proposal_without_context_or_team_tag_records_none(stack: Stack) -> None:
    proposal = stack.proposal()
    untagged = tuple(
        b.model_copy(update={"tags": {k: v for k, v in b.tags.items() if k != "team"}}) for b in proposal.beliefs_used
    )
    # As a workflow input written by release 0.2.0 reads: no context field at all.
    old = Proposal.model_validate(
        proposal.model_copy(update={"beliefs_used": untagged}).model_dump(mode="json", exclude={"context"})
    )
    assert old.context is None
    handle = await start(stack, old)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    assert (await proposed_payload(stack, old.id))["context"] is None
    assert (await entry_with(stack, old.id, InboxStatus.PENDING)).team is None
    await handle.terminate("done")
