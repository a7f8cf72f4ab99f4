"""Finding triggers: a tick whose findings set off a playbook hands it the nodes; the loop starts it.

The deliberate activity matches the findings against the playbooks' `finding` triggers (target
selector, kinds), returns the playbook for the loop to start, and the agent proposes nothing on
those nodes that tick (nor keeps an intention there). The loop starts one run at a time per
playbook and not again within its cool-down, so the agent takes over when the playbook did nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from agents import AgentState, load_desires
from agents.playbook import Playbook, load_playbook
from controller.app.worker import build_worker
from tests.workflows.conftest import Stack, eventually, make_simulator
from tests.workflows.test_agent_loop import loop_input
from twin.sources import FileSource
from workflows import AgentLoopWorkflow, PlaybookRunReport
from workflows.activities import AgentActivities, DeliberateInput, DeliberateResult

pytestmark = pytest.mark.integration


def gateway_playbook(name: str = "relieve-gateway", kinds: str = "[saturated]") -> Playbook:
    text = f"""
name: {name}
description: add a gateway replica when it saturates
version: 1
owner: sre
target:
  nodes: [gateway]
triggers:
  - {{type: finding, kinds: {kinds}}}
steps:
  - name: add-one
    action: scale
    params:
      replicas: "{{{{ replicas + 1 }}}}"
    verify:
      expect: replicas >= 5
      within: 1m
limits:
  max_duration: 10m
  max_nodes: 1
"""
    return load_playbook(text, f"{name}.yaml", name=name)


async def deliberate(playbooks: list[Playbook], cooling: list[str] | None = None) -> DeliberateResult:
    acts = AgentActivities(FileSource(Path("unused.json")), load_desires(None), playbooks=playbooks)
    snapshot = make_simulator("hidden_downstream.yaml").snapshot()
    run = ActivityEnvironment().run(
        acts.deliberate, DeliberateInput(state=AgentState(), snapshot=snapshot, cooling_playbooks=cooling or [])
    )
    result: DeliberateResult = await asyncio.wait_for(run, timeout=20)
    return result


async def test_without_a_matching_trigger_the_agent_proposes_as_before() -> None:
    result = await deliberate([gateway_playbook(kinds="[latency_slo]")])
    assert result.triggered == ()
    assert [p.target for p in result.proposals] == ["gateway"]
    assert [i.id for i in result.new_state.intentions] == [result.proposals[0].id]


async def test_a_matching_finding_hands_the_node_to_the_playbook() -> None:
    book = gateway_playbook()
    result = await deliberate([book])
    (triggered,) = result.triggered
    assert triggered.playbook == book and triggered.nodes == ("gateway",)
    assert triggered.reason == "saturated on gateway"
    # The agent steps aside on the node: no proposal, and no intention left behind for it.
    assert result.proposals == () and result.new_state.intentions == ()


async def test_a_cooling_playbook_is_not_started_and_the_agent_proposes() -> None:
    result = await deliberate([gateway_playbook()], cooling=["relieve-gateway"])
    assert result.triggered == ()
    assert [p.target for p in result.proposals] == ["gateway"]


async def test_the_loop_starts_the_playbook_a_finding_sets_off_once_per_cool_down(stack: Stack, tmp_path: Path) -> None:
    services = dataclasses.replace(stack.services, playbooks=(gateway_playbook(),))
    queue = f"{stack.task_queue}-findings"
    async with build_worker(stack.client, queue, services):
        handle = await stack.client.start_workflow(
            AgentLoopWorkflow.run,
            loop_input(approval_key=stack.services.signer.public_key_b64, max_ticks=None, cooldown_seconds=3600),
            id=f"loop-{uuid.uuid4()}",
            task_queue=queue,
        )
        status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: bool(s.playbooks_triggered))
        assert set(status.playbooks_triggered) == {"relieve-gateway"}
        (run_id,) = {h.run_id for h in status.handed.values()} or await _finished_run_ids(stack, queue)
        run: WorkflowHandle[Any, PlaybookRunReport] = stack.client.get_workflow_handle(
            run_id, result_type=PlaybookRunReport
        )
        report = await run.result()
        assert report.trigger == "finding"
        (gateway,) = report.nodes
        # The gateway is critical: its step waits for a human in the queue, and the agent leaves it be.
        assert gateway.outcome == "waiting_approval", gateway
        # The run told the loop it ended: the node is no longer handed over, and the agent still leaves it
        # to the parked step (an open remediation of the node in the inbox).
        status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: not s.handed)
        status = await eventually(
            lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= status.ticks_done + 3
        )
        assert status.proposals_started == 0 and not status.open, status
        started = [r for r in await stack.services.ledger.trail(run.id) if r.kind.value == "playbook_run_started"]
        assert started[0].payload["trigger"] == "finding"
        assert started[0].payload["details"]["reason"] == "saturated on gateway"
        await handle.terminate("test over")
        assert gateway.proposal_id is not None
        await stack.client.get_workflow_handle(f"remediation-{gateway.proposal_id}").terminate("test over")


async def _finished_run_ids(stack: Stack, queue: str) -> set[str]:
    """The loop's playbook runs, once visibility lists them (when the run ended before the loop was asked)."""

    async def ids() -> set[str]:
        query = f"TaskQueue = '{queue}' AND WorkflowType = 'PlaybookRunWorkflow'"
        return {w.id async for w in stack.client.list_workflows(query)}

    return await eventually(ids, bool)
