"""AgentLoopWorkflow: one child per intention, never two per node, and the loop breaker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.workflows.conftest import Stack, eventually, signed_update
from workflows import AgentLoopInput, AgentLoopWorkflow, RemediationWorkflow, Stage, Timeouts
from workflows.contracts import Principal
from workflows.policy import ActionRecord
from workflows.ports import InboxEntry, InboxStatus

pytestmark = pytest.mark.integration

TICKS = 3


def loop_input(**fields: object) -> AgentLoopInput:
    base: dict[str, object] = {
        "twin_id": "shop",
        "tick_seconds": 0.5,
        "max_ticks": TICKS,
        "timeouts": Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
    }
    base.update(fields)
    return AgentLoopInput.model_validate(base)


async def test_loop_starts_one_remediation_per_node(stack: Stack) -> None:
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        loop_input(approval_key=stack.services.signer.public_key_b64),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await handle.result()
    assert status.ticks_done == TICKS
    assert status.proposals_started == 1, status
    child_ids = set(status.open.values())
    assert len(child_ids) == 1 and {"gateway", "checkout"} <= set(status.open)
    child = stack.client.get_workflow_handle(child_ids.pop())
    await eventually(lambda: child.query(RemediationWorkflow.state), lambda s: s.stage == Stage.AWAITING_APPROVAL)
    await signed_update(stack.services.signer, child, "reject", Principal(id="alice", roles=["sre"]), "test over")
    await child.result()


async def test_loop_breaker_stops_a_plan_rolled_back_twice(stack: Stack) -> None:
    """The policy's loop breaker, fed with the outcomes the loop records, stops the plan; the loop holds it."""
    proposal = stack.proposal()
    rolled_back = [
        ActionRecord(
            at=datetime.now(UTC) - timedelta(hours=hours),
            node=node,
            action_type="scale",
            plan_hash=proposal.plan_hash,
            outcome="rolled_back",
        )
        for hours in (1, 3)  # two remediations of this plan, each recorded once per action, as the loop does
        for node in (proposal.target, "checkout")
    ]
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        loop_input(actions=rolled_back, approval_key=stack.services.signer.public_key_b64, max_ticks=5),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await handle.result()
    assert status.proposals_started == 1 and not status.open, "asked once; then held, however many ticks"
    key = f"{proposal.target}/{proposal.plan_hash}"
    assert key in status.held and status.held[key] > datetime.now(UTC) + timedelta(hours=23)
    (child,) = status.results
    assert child.stage == Stage.DENIED and "loop_breaker" in child.deny_codes
    trail = await stack.services.ledger.trail(proposal.id)
    assert [r.kind.value for r in trail] == ["proposed", "policy_evaluated", "escalated", "completed"]
    assert "loop breaker" in trail[2].payload["reason"]
    assert stack.notifier.kinds().count("loop_breaker") == 1


async def test_loop_leaves_a_node_to_a_remediation_it_did_not_start(stack: Stack) -> None:
    """A playbook run's step on the node waits in the inbox: the agent starts no second remediation, and
    proposes once that one has ended (the held-back proposal did not become an intention)."""
    proposal = stack.proposal()
    other = InboxEntry(
        proposal_id="p-a-playbook-step",
        workflow_id="remediation-p-a-playbook-step",
        twin_id="shop",
        status=InboxStatus.PENDING,
        risk="medium",
        target=proposal.target,
        summary="Playbook trim v1 on the same node",
        created_at=datetime.now(UTC),
    )
    await stack.services.inbox.upsert(other)
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        loop_input(approval_key=stack.services.signer.public_key_b64, max_ticks=None),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 3)
    assert status.proposals_started == 0 and not status.open, status
    await stack.services.inbox.upsert(other.model_copy(update={"status": InboxStatus.REJECTED}))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.proposals_started == 1)
    child = stack.client.get_workflow_handle(next(iter(status.open.values())))
    await eventually(lambda: child.query(RemediationWorkflow.state), lambda s: s.stage == Stage.AWAITING_APPROVAL)
    await signed_update(stack.services.signer, child, "reject", Principal(id="alice", roles=["sre"]), "test over")
    await child.result()
    await handle.terminate("test over")
