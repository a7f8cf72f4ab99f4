"""Event-driven ticks: a wake-up (alert, pushed or changed snapshot) makes the loop look now, not at the tick."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle

from agents import AlertNote
from tests.workflows.conftest import Stack, eventually
from twin.actions import Action
from workflows import AgentLoopInput, AgentLoopWorkflow, RemediationWorkflow, Timeouts
from workflows.agent_loop import MAX_ALERTS_HELD, AgentLoopState, WakeUp

pytestmark = pytest.mark.integration

LONG_TICK = 600.0
"""The periodic tick in these tests: far longer than any of them waits."""


def _heal(stack: Stack) -> list[Action]:
    """Apply the agent's fix to the estate by hand; return what undoes it (the trouble, on demand)."""
    undo: list[Action] = []
    for action in stack.proposal().actions:
        undo.append(stack.simulator.apply(action))
    return undo


async def _start_quiet_loop(stack: Stack) -> tuple[WorkflowHandle[AgentLoopWorkflow, AgentLoopState], list[Action]]:
    undo = _heal(stack)
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        AgentLoopInput(
            twin_id="shop",
            tick_seconds=LONG_TICK,
            approval_key=stack.services.signer.public_key_b64,
            timeouts=Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
        ),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 1)
    assert status.proposals_started == 0 and status.nodes, status
    return handle, undo


async def _end(stack: Stack, handle: WorkflowHandle[AgentLoopWorkflow, AgentLoopState]) -> None:
    """Stop the loop and the remediations it left open (their ids recur: same twin, same plan)."""
    status = await handle.query(AgentLoopWorkflow.state)
    await handle.terminate("test over")
    for wid in set(status.open.values()):
        await stack.client.get_workflow_handle(wid).terminate("test over")


def _alert(node: str, *, fingerprint: str = "fp-1", starts_at: datetime | None = None) -> AlertNote:
    now = datetime.now(UTC)
    return AlertNote(
        fingerprint=fingerprint,
        name="TwinopsNodeHot",
        node=node,
        starts_at=starts_at or now - timedelta(seconds=30),
        received_at=now,
        severity="page",
        summary=f"{node} over 90% busy",
        posted_by="alertmanager",
    )


async def test_a_changed_twin_is_acted_on_at_once_not_at_the_next_tick(stack: Stack) -> None:
    handle, undo = await _start_quiet_loop(stack)
    for action in undo:
        stack.simulator.apply(action)  # the trouble comes back
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="changed", detail="test: load step"))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.proposals_started >= 1)
    await _end(stack, handle)
    assert status.woken == 1 and status.ticks_done == 2, status


async def test_a_firing_alert_wakes_the_loop_and_is_evidence_on_the_proposal_and_the_trail(stack: Stack) -> None:
    handle, undo = await _start_quiet_loop(stack)
    for action in undo:
        stack.simulator.apply(action)
    target = stack.proposal().target
    alert = _alert(target)
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", alerts=[alert]))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.proposals_started >= 1)
    assert [a.fingerprint for a in status.alerts] == ["fp-1"]
    child = stack.client.get_workflow_handle(status.open[target])
    proposal = (await child.query(RemediationWorkflow.state)).proposal_id
    trail = await stack.services.ledger.trail(proposal)
    proposed = trail[0].payload
    assert proposed["rationale"].endswith(f"Paged: {alert.statement()}."), proposed["rationale"]
    paged = [f for f in proposed["intention"]["findings"] if f["kind"] == "alert"]
    assert [(f["node"], f["message"]) for f in paged] == [(target, alert.statement())], paged
    # The same alert again (Alertmanager repeats firing ones) refreshes it: no tick, no new event.
    again = alert.model_copy(update={"received_at": datetime.now(UTC)})
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", alerts=[again]))
    refreshed = await eventually(
        lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.alerts[0].received_at == again.received_at
    )
    assert refreshed.ticks_done == status.ticks_done
    # Resolved, it is forgotten, and that wakes nothing either.
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", resolved=["fp-1"]))
    final = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: not s.alerts)
    await _end(stack, handle)
    loop_trail = await stack.services.ledger.trail("agent-loop/shop")
    detected = [r for r in loop_trail if r.kind.value == "detected"]
    assert len(detected) == 1 and detected[0].actor == "user:alertmanager", detected
    assert detected[0].payload["details"]["alert"]["fingerprint"] == "fp-1"
    assert detected[0].target_nodes == (target,) or list(detected[0].target_nodes) == [target]
    assert final.woken == 1 and final.ticks_done == status.ticks_done, final


async def test_wake_ups_during_a_tick_are_answered_by_one_more_tick(stack: Stack) -> None:
    handle, _ = await _start_quiet_loop(stack)
    for i in range(5):
        await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="snapshot", detail=f"push {i}"))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 2)
    await _end(stack, handle)
    assert 2 <= status.ticks_done <= 3 and status.woken >= 1, status


async def test_an_alert_storm_is_held_to_a_bound_and_recorded_as_one_event(stack: Stack) -> None:
    handle, _ = await _start_quiet_loop(stack)
    now = datetime.now(UTC)
    storm = [
        _alert("gateway", fingerprint=f"storm-{i:03d}", starts_at=now - timedelta(seconds=i)).model_copy(
            update={"received_at": now + timedelta(microseconds=i)}
        )
        for i in range(MAX_ALERTS_HELD + 50)
    ]
    await handle.signal(AgentLoopWorkflow.wake, WakeUp(reason="alert", alerts=storm))
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.woken >= 1)
    await _end(stack, handle)
    assert len(status.alerts) == MAX_ALERTS_HELD
    assert {a.fingerprint for a in status.alerts} == {a.fingerprint for a in storm[-MAX_ALERTS_HELD:]}
    detected = [r for r in await stack.services.ledger.trail("agent-loop/shop") if r.kind.value == "detected"]
    storm_events = [r for r in detected if "alerts" in r.payload["details"]]
    assert len(storm_events) == 1 and len(storm_events[0].payload["findings"]) == MAX_ALERTS_HELD
