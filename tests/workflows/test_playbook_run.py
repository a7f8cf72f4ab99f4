"""PlaybookRunWorkflow end to end: the dev server, the real ledger, inbox, Rego policy and a simulated estate.

A playbook run plans on the twin, runs what the shipped safety policy auto-approves (a small
scale-down of a standard-tier service), parks the rest in the SRE queue, stops at its maximum
duration with what ran undone, fails closed without a snapshot, and reports every node.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from agents.playbook import Playbook, load_playbook
from controller.app.worker import build_worker
from controller.core.errors import NotFoundError
from tests.workflows.conftest import Stack, eventually, signed_update
from tests.workflows.test_remediation import ALICE, BOB, FAST, wait_stage
from twin.sources import TwinSourceError
from workflows import (
    PlaybookRunInput,
    PlaybookRunReport,
    PlaybookRunWorkflow,
    RemediationResult,
    RemediationWorkflow,
    Stage,
    Timeouts,
)
from workflows.audit import EventKind
from workflows.contracts import remediation_workflow_id
from workflows.playbook_contracts import NodeReport
from workflows.playbook_run import PLAYBOOK_RUN_FAILED
from workflows.ports import InboxEntry, InboxStatus, NotificationKind

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("scenario", ["diurnal_day.yaml"])]


def playbook(
    name: str,
    nodes: list[str],
    *,
    approval: str = "policy",
    max_duration: str = "10m",
    precondition: str = "demand_utilization < 0.9",
    expect: str = "demand_utilization < 0.95",
    within: str = "5m",
) -> Playbook:
    text = f"""
name: {name}
description: take one replica from each target while demand is low
version: 3
owner: sre
target:
  nodes: [{", ".join(nodes)}]
triggers:
  - {{type: schedule, cron: "30 2 * * *", timezone: UTC}}
preconditions:
  - {precondition}
steps:
  - name: trim
    action: scale
    params:
      replicas: "{{{{ replicas - 1 }}}}"
    approval: {approval}
    verify:
      expect: {expect}
      within: {within}
limits:
  max_duration: {max_duration}
  max_nodes: 5
"""
    return load_playbook(text, f"{name}.yaml", name=name)


async def start_run(stack: Stack, book: Playbook, timeouts: Timeouts = FAST) -> WorkflowHandle[Any, PlaybookRunReport]:
    return await stack.client.start_workflow(
        PlaybookRunWorkflow.run,
        PlaybookRunInput(
            playbook=book,
            trigger="manual",
            requested_by="alice",
            timeouts=timeouts,
            approval_key=stack.services.signer.public_key_b64,
        ),
        id=f"playbook-run-{book.name}-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )


def replicas(stack: Stack, node: str) -> int:
    return stack.simulator.snapshot().node(node).replicas


def by_node(report: PlaybookRunReport) -> dict[str, NodeReport]:
    return {n.node: n for n in report.nodes}


async def inbox_entry(stack: Stack, proposal_id: str, status: InboxStatus) -> InboxEntry:
    inbox: Any = stack.services.inbox

    async def probe() -> InboxEntry | None:
        try:
            entry: InboxEntry = await inbox.aget(proposal_id)
        except NotFoundError:
            return None
        return entry

    entry = await eventually(probe, lambda e: e is not None and e.status == status)
    assert entry is not None
    return entry


async def terminate(stack: Stack, *workflow_ids: str) -> None:
    for workflow_id in workflow_ids:
        await stack.client.get_workflow_handle(workflow_id).terminate("test over")


async def test_a_run_executes_what_the_policy_auto_approves_and_parks_the_rest(stack: Stack) -> None:
    # catalog is a standard-tier service: one replica fewer is a low-risk scale-down the policy auto-approves.
    # web is critical: the policy never auto-approves it, so it waits for the SRE queue.
    book = playbook("trim-two", ["web", "catalog"])
    assert (replicas(stack, "web"), replicas(stack, "catalog")) == (7, 9)
    handle = await start_run(stack, book)
    report = await handle.result()

    nodes = by_node(report)
    assert set(nodes) == {"web", "catalog"}
    catalog, web = nodes["catalog"], nodes["web"]
    assert catalog.outcome == "ran" and catalog.stage is Stage.COMPLETED, catalog
    assert web.outcome == "waiting_approval" and web.stage is Stage.AWAITING_APPROVAL, web
    assert report.status == "waiting_approval" and report.stopped is None
    assert (replicas(stack, "web"), replicas(stack, "catalog")) == (7, 8)
    assert catalog.before is not None and catalog.before.replicas == 9
    assert catalog.after is not None and catalog.after.replicas == 8
    assert [s.action for s in catalog.steps] == ["scale catalog -> 8"]
    assert report.trigger == "manual" and report.requested_by == "alice" and report.version == 3

    # The parked step is in the same queue as the agent's proposals, named for the playbook.
    assert web.proposal_id is not None and catalog.proposal_id is not None
    entry = await inbox_entry(stack, web.proposal_id, InboxStatus.PENDING)
    assert entry.summary.startswith("Playbook trim-two v3 on web")

    # Every step is on record with the playbook's name and version; the run has a trail of its own.
    trail = await stack.services.ledger.trail(catalog.proposal_id)
    proposed = next(r for r in trail if r.kind is EventKind.PROPOSED)
    assert proposed.actor == "playbook:trim-two"
    recorded = proposed.payload["details"]["playbook"]
    assert {k: recorded[k] for k in ("name", "version", "run_id", "steps", "human_approval", "expect")} == {
        "name": "trim-two",
        "version": 3,
        "run_id": handle.id,
        "steps": ["trim"],
        "human_approval": False,
        "expect": ["demand_utilization < 0.95"],
    }
    assert recorded["requested_by"] == "alice" and recorded["preapproval"] is None
    assert [r.kind for r in trail][-1] is EventKind.COMPLETED
    run_trail = await stack.services.ledger.trail(handle.id)
    assert [r.kind for r in run_trail] == [EventKind.PLAYBOOK_RUN_STARTED, EventKind.PLAYBOOK_RUN_FINISHED]
    assert run_trail[1].payload["outcome"] == "waiting_approval"
    assert set(run_trail[1].payload["remediations"]) == {web.proposal_id, catalog.proposal_id}

    # The report is kept and its summary went to the notifier.
    assert stack.services.playbook_runs is not None
    assert await stack.services.playbook_runs.get(handle.id) == report
    assert NotificationKind.PLAYBOOK_RUN_FINISHED.value in stack.notifier.kinds(handle.id)
    await terminate(stack, remediation_workflow_id(web.proposal_id))


async def test_approval_always_parks_a_step_the_policy_would_auto_approve(stack: Stack) -> None:
    book = playbook("trim-by-hand", ["catalog"], approval="always")
    report = await (await start_run(stack, book)).result()
    catalog = by_node(report)["catalog"]
    assert catalog.outcome == "waiting_approval", catalog
    assert replicas(stack, "catalog") == 9
    assert catalog.proposal_id is not None
    child: WorkflowHandle[Any, RemediationResult] = stack.client.get_workflow_handle(
        remediation_workflow_id(catalog.proposal_id), result_type=RemediationResult
    )
    state = await child.query(RemediationWorkflow.state)
    assert state.required_approvals >= 1
    # A human's approval runs it; not alice's, who started the run (self-approval).
    refused = await signed_update(stack.services.signer, child, "approve", ALICE, "mine")
    assert not refused.counted and "started this playbook run" in refused.reasons[0]
    result = await signed_update(stack.services.signer, child, "approve", BOB, "ok for tonight")
    assert result.quorum_met
    assert (await child.result()).stage is Stage.COMPLETED
    assert replicas(stack, "catalog") == 8


async def test_a_run_that_reaches_its_maximum_duration_stops_and_undoes_what_ran(stack: Stack) -> None:
    # The first node's fix is still being verified (a 60 s window) when the run's 8 s are up.
    book = playbook("trim-slowly", ["catalog", "search"], max_duration="8s", within="5s")
    slow = FAST.model_copy(update={"verification_window_seconds": 60})
    handle = await start_run(stack, book, slow)
    report = await handle.result()

    nodes = by_node(report)
    first, second = sorted(nodes.values(), key=lambda n: [x.node for x in report.nodes].index(n.node))
    assert first.outcome == "rolled_back", first
    assert first.summary.startswith("stopped at the deadline"), first.summary
    assert second.outcome == "not_started", second
    assert report.status == "partial"
    assert report.stopped is not None and "maximum duration" in report.stopped
    assert (replicas(stack, "catalog"), replicas(stack, "search")) == (9, 4)

    assert first.proposal_id is not None
    trail = await stack.services.ledger.trail(first.proposal_id)
    kinds = [r.kind for r in trail]
    assert EventKind.STEP_SUCCEEDED in kinds and EventKind.COMPENSATED in kinds
    assert EventKind.COMPENSATION_FAILED not in kinds
    cancelled = next(r for r in trail if r.kind is EventKind.CANCELLED)
    assert cancelled.actor == "playbook:trim-slowly"
    assert cancelled.payload["by"] == "playbook:trim-slowly"
    assert "maximum duration" in cancelled.payload["reason"]


async def test_a_step_whose_own_check_fails_after_it_ran_is_rolled_back(stack: Stack) -> None:
    # The plan's goals are met (utilization stays under target), but the playbook's check is not.
    book = playbook("trim-checked", ["catalog"], expect="replicas >= 9", within="4s")
    report = await (await start_run(stack, book)).result()
    catalog = by_node(report)["catalog"]
    assert catalog.outcome == "rolled_back" and catalog.stage is Stage.ROLLED_BACK, catalog
    assert any("playbook check 'replicas >= 9' on catalog: not met" in r for r in catalog.reasons), catalog.reasons
    assert replicas(stack, "catalog") == 9
    assert report.status == "partial"


async def test_a_node_whose_precondition_fails_is_left_alone_and_said_why(stack: Stack) -> None:
    book = playbook("trim-never", ["catalog"], precondition="demand_utilization > 5")
    report = await (await start_run(stack, book)).result()
    catalog = by_node(report)["catalog"]
    assert catalog.outcome == "not_met" and catalog.proposal_id is None
    assert "demand_utilization > 5" in catalog.summary
    assert report.status == "succeeded"
    assert replicas(stack, "catalog") == 9


class _NoTwin:
    async def latest(self) -> Any:
        raise TwinSourceError("the twin endpoint answered 503")


async def test_without_a_snapshot_the_run_changes_nothing_and_fails_after_its_report(stack: Stack) -> None:
    services = dataclasses.replace(stack.services, twin=_NoTwin())
    queue = f"{stack.task_queue}-no-twin"
    book = playbook("trim-blind", ["catalog"])
    async with build_worker(stack.client, queue, services):
        handle = await stack.client.start_workflow(
            PlaybookRunWorkflow.run,
            PlaybookRunInput(playbook=book, approval_key=stack.services.signer.public_key_b64),
            id=f"playbook-run-trim-blind-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == PLAYBOOK_RUN_FAILED
    assert replicas(stack, "catalog") == 9
    assert stack.services.playbook_runs is not None
    report = await stack.services.playbook_runs.get(handle.id)
    assert report.status == "failed" and report.nodes == []
    assert report.stopped is not None and "503" in report.stopped


async def test_the_state_query_names_the_node_in_hand(stack: Stack) -> None:
    book = playbook("trim-watch", ["catalog"])
    slow = FAST.model_copy(update={"verification_window_seconds": 30})
    handle = await start_run(stack, book, slow)
    state = await eventually(lambda: handle.query(PlaybookRunWorkflow.state), lambda s: s.current == "catalog")
    assert state.phase == "running" and state.deadline is not None
    trail = await eventually(
        lambda: stack.services.ledger.trail(handle.id),
        lambda t: bool(t) and t[0].kind is EventKind.PLAYBOOK_RUN_STARTED,
    )
    # Cancelled once its step ran (the child is verifying).
    child_id = await eventually(lambda: open_child(stack), lambda c: c is not None)
    assert child_id is not None and trail
    await wait_stage(stack.client.get_workflow_handle(child_id), Stage.VERIFYING)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    # Cancelling the run undoes what its step did.
    assert replicas(stack, "catalog") == 9
    assert stack.services.playbook_runs is not None
    report = await stack.services.playbook_runs.get(handle.id)
    assert report.stopped == "the run was cancelled"
    assert report.nodes[0].outcome == "rolled_back", report.nodes[0]
    assert report.nodes[0].summary.startswith("stopped with the run")


async def open_child(stack: Stack) -> str | None:
    """The id of a RemediationWorkflow on the stack's task queue, once visibility shows one."""
    async for execution in stack.client.list_workflows(
        f"TaskQueue = '{stack.task_queue}' AND WorkflowType = 'RemediationWorkflow'"
    ):
        return execution.id
    return None


async def test_a_node_another_remediation_is_working_on_is_left_to_it(stack: Stack) -> None:
    # The agent loop's remediation of catalog waits for approval: the playbook does not start a second one.
    await stack.services.inbox.upsert(
        InboxEntry(
            proposal_id="p-agents-own",
            workflow_id="remediation-p-agents-own",
            twin_id="shop",
            status=InboxStatus.PENDING,
            risk="medium",
            target="catalog",
            summary="the agent's proposal",
            created_at=datetime.now(UTC),
        )
    )
    report = await (await start_run(stack, playbook("trim-busy", ["catalog", "search"]))).result()
    nodes = by_node(report)
    assert nodes["catalog"].outcome == "already_open", nodes["catalog"]
    assert "already in progress (p-agents-own)" in nodes["catalog"].summary
    assert nodes["search"].outcome == "ran"
    assert (replicas(stack, "catalog"), replicas(stack, "search")) == (9, 3)
