"""Capture the replay histories of this release: `make histories` runs this file.

Not collected by the normal suite (its name does not start with `test_`). Each case
drives a real RemediationWorkflow, AgentLoopWorkflow or PlaybookRunWorkflow on the dev server into one
situation a running workflow can be in when a new release is deployed (waiting for
approval, escalated, mid-verification, mid-compensation, the loop mid-run) or ends
in (completed, rolled back, denied, rejected, expired, cancelled, withdrawn), and
saves its history under `histories/<version>/`. A release's histories are written
once and never again: the manifest test refuses a changed or removed file of an
earlier release.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from agents import AlertNote
from tests.workflows.conftest import Stack, eventually, signed_update
from tests.workflows.history_store import write_history
from tests.workflows.test_playbook_run import open_child, playbook, start_run
from tests.workflows.test_remediation import (
    ALICE,
    BOB,
    CAROL,
    CHECK_ONCE,
    FAST,
    approve_until_quorum,
    start,
    wait_stage,
)
from twin.actions import Action, ScaleAction
from workflows import AgentLoopInput, AgentLoopWorkflow, PlaybookRunWorkflow, RemediationWorkflow, Stage, Timeouts
from workflows.agent_loop import WakeUp
from workflows.contracts import remediation_workflow_id
from workflows.ports import Actuator, StepOutcome

pytestmark = pytest.mark.integration


async def _save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    write_history(name, (await handle.fetch_history()).to_json())


async def test_capture_completed(stack: Stack) -> None:
    handle = await start(stack, stack.proposal())
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
    assert (await handle.result()).stage == Stage.COMPLETED
    await _save(handle, "remediation_completed")


async def test_capture_rolled_back(stack: Stack) -> None:
    proposal = stack.proposal()
    slo = {a.node: 0.001 for a in proposal.actions if isinstance(a, ScaleAction)}
    handle = await start(stack, proposal, latency_slo_ms=slo, timeouts=CHECK_ONCE)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
    assert (await handle.result()).stage == Stage.ROLLED_BACK
    await _save(handle, "remediation_rolled_back")


async def test_capture_awaiting_approval(stack: Stack) -> None:
    handle = await start(stack, stack.proposal())
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await _save(handle, "remediation_awaiting_approval")
    await handle.terminate("captured")


async def test_capture_partly_approved(stack: Stack) -> None:
    handle = await start(stack, stack.proposal())
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    first = await approve_until_quorum(stack, handle, ALICE)
    assert first[0].counted
    await _save(handle, "remediation_partly_approved")
    await handle.terminate("captured")


async def test_capture_escalated(stack: Stack) -> None:
    handle = await start(stack, stack.proposal(), timeouts=Timeouts(approval_seconds=1, expiry_seconds=3600))
    await wait_stage(handle, Stage.ESCALATED)
    await _save(handle, "remediation_escalated")
    await handle.terminate("captured")


async def test_capture_verifying(stack: Stack) -> None:
    handle = await start(stack, stack.proposal(), timeouts=Timeouts(verification_window_seconds=3600))
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
    await wait_stage(handle, Stage.VERIFYING)
    await _save(handle, "remediation_verifying")
    await handle.terminate("captured")


class _HeldCompensations:
    """The real simulator actuator, except compensations wait until released (to catch one mid-way)."""

    def __init__(self, inner: Actuator) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def apply(self, idempotency_key: str, action: Action) -> StepOutcome:
        if "/compensate/" in idempotency_key:
            self.holding.set()
            await self.release.wait()
        return await self.inner.apply(idempotency_key, action)


async def test_capture_mid_compensation(stack: Stack) -> None:
    from controller.app.worker import build_worker

    held = _HeldCompensations(stack.services.actuator)
    stack.services.actuator = held
    queue = f"test-{uuid.uuid4()}"
    async with build_worker(stack.client, queue, stack.services):
        stack.task_queue = queue
        proposal = stack.proposal()
        slo = {a.node: 0.001 for a in proposal.actions if isinstance(a, ScaleAction)}
        handle = await start(stack, proposal, latency_slo_ms=slo, timeouts=CHECK_ONCE)
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
        await asyncio.wait_for(held.holding.wait(), 30)
        await wait_stage(handle, Stage.COMPENSATING)
        await _save(handle, "remediation_mid_compensation")
        await handle.terminate("captured")
        held.release.set()


async def test_capture_denied(stack: Stack) -> None:
    from datetime import timedelta

    proposal = stack.proposal()
    stale = proposal.model_copy(update={"observed_at": proposal.observed_at - timedelta(hours=2)})
    handle = await start(stack, stale)
    assert (await handle.result()).stage == Stage.DENIED
    await _save(handle, "remediation_denied")


async def test_capture_rejected(stack: Stack) -> None:
    handle = await start(stack, stack.proposal())
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await signed_update(stack.services.signer, handle, "reject", ALICE, "not now")
    assert (await handle.result()).stage == Stage.REJECTED
    await _save(handle, "remediation_rejected")


async def test_capture_expired(stack: Stack) -> None:
    handle = await start(stack, stack.proposal(), timeouts=Timeouts(approval_seconds=1, expiry_seconds=1))
    assert (await handle.result()).stage == Stage.EXPIRED
    await _save(handle, "remediation_expired")


async def test_capture_cancelled(stack: Stack) -> None:
    handle = await start(stack, stack.proposal(), timeouts=Timeouts(verification_window_seconds=600))
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
    await wait_stage(handle, Stage.VERIFYING)
    await handle.cancel()
    with pytest.raises(Exception):  # noqa: B017 - a cancelled workflow fails its result, whatever the SDK wraps it in
        await handle.result()
    await _save(handle, "remediation_cancelled")


async def test_capture_withdrawn(stack: Stack) -> None:
    handle = await start(stack, stack.proposal())
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await handle.signal(RemediationWorkflow.withdraw, "the agent reconsidered (capture)")
    assert (await handle.result()).stage == Stage.CANCELLED
    await _save(handle, "remediation_withdrawn")


def _loop_input(**fields: object) -> AgentLoopInput:
    base: dict[str, object] = {"twin_id": "shop", "tick_seconds": 0.5, "timeouts": FAST}
    base.update(fields)
    return AgentLoopInput.model_validate(base)


async def test_capture_agent_loop_finished(stack: Stack) -> None:
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        _loop_input(max_ticks=3, approval_key=stack.services.signer.public_key_b64),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await handle.result()
    for wid in set(status.open.values()):
        child = stack.client.get_workflow_handle(wid)
        await eventually(functools.partial(child.query, RemediationWorkflow.state), lambda s: s.stage in _PENDING)
        await signed_update(stack.services.signer, child, "reject", ALICE, "capture over")
        await child.result()
    await _save(handle, "agent_loop")


_PENDING = (Stage.AWAITING_APPROVAL, Stage.ESCALATED)


async def test_capture_agent_loop_mid_run(stack: Stack) -> None:
    """The loop while it runs (no max_ticks), with a child waiting for approval, then after it settled."""
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        _loop_input(approval_key=stack.services.signer.public_key_b64),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await eventually(
        lambda: handle.query(AgentLoopWorkflow.state), lambda s: bool(s.open) and s.ticks_done >= 2
    )
    child = stack.client.get_workflow_handle(next(iter(status.open.values())))
    await eventually(lambda: child.query(RemediationWorkflow.state), lambda s: s.stage in _PENDING)
    await _save(handle, "agent_loop_mid_run")
    await signed_update(stack.services.signer, child, "reject", ALICE, "capture over")
    await child.result()
    await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: not s.open and bool(s.results))
    await _save(handle, "agent_loop_after_child")
    await handle.terminate("captured")


# ---- playbook runs (since 0.4.0) --------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["diurnal_day.yaml"])
async def test_capture_playbook_run_finished(stack: Stack) -> None:
    """A run that ran one node (auto-approved, verified) and parked another: the run's end."""
    handle = await start_run(stack, playbook("capture-two", ["web", "catalog"]))
    report = await handle.result()
    assert {n.outcome for n in report.nodes} == {"ran", "waiting_approval"}
    await _save(handle, "playbook_run_finished")
    for node in report.nodes:
        if node.outcome == "waiting_approval" and node.proposal_id:
            await stack.client.get_workflow_handle(remediation_workflow_id(node.proposal_id)).terminate("captured")


@pytest.mark.parametrize("scenario", ["diurnal_day.yaml"])
async def test_capture_playbook_run_mid_run(stack: Stack) -> None:
    """A run waiting for its child while the child verifies: what an upgrade meets in the middle of a night."""
    slow = FAST.model_copy(update={"verification_window_seconds": 30})
    handle = await start_run(stack, playbook("capture-mid", ["catalog"]), slow)
    await eventually(lambda: handle.query(PlaybookRunWorkflow.state), lambda s: s.current == "catalog")
    child_id = await eventually(lambda: open_child(stack), lambda c: c is not None)
    assert child_id is not None
    await wait_stage(stack.client.get_workflow_handle(child_id), Stage.VERIFYING)
    await _save(handle, "playbook_run_mid_run")
    await handle.terminate("captured")
    await stack.client.get_workflow_handle(child_id).terminate("captured")


# ---- event-driven ticks (since 0.5.0) ---------------------------------------------------------------


async def test_capture_agent_loop_woken(stack: Stack) -> None:
    """A loop on a long tick woken by an alert (recorded, evidence on the proposal) and by a pushed snapshot."""
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        _loop_input(tick_seconds=600, approval_key=stack.services.signer.public_key_b64),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 1)
    now = datetime.now(UTC)
    alert = AlertNote(
        fingerprint="capture", name="TwinopsNodeHot", node="gateway", starts_at=now, received_at=now,
        severity="page", summary="gateway over 90% busy", posted_by="alertmanager",
    )  # fmt: skip
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", alerts=[alert]))
    await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.woken >= 1)
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", resolved=["capture"]))
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="snapshot", detail="capture push"))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.woken >= 2)
    await _save(handle, "agent_loop_woken")
    await handle.terminate("captured")
    for wid in set(status.open.values()):
        await stack.client.get_workflow_handle(wid).terminate("captured")
