"""A playbook's schedule end to end: sync makes it, a trigger starts a run on the worker, the run acts and reports.

The stack's worker runs the run and its remediations over the real ledger, inbox and Rego gate; the schedule
is Temporal's, made by `apply_sync` from a playbooks directory of one file. catalog (standard tier) gets the
1-replica scale-down the policy auto-approves; web (critical) parks in the SRE queue. A dry run of the same
playbook changes nothing and says so per node.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from controller.adapters.audit.reader import LedgerReader
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.live_twin import WallClockSimulatorSource
from controller.app.playbook_schedules import PlaybookRow, apply_sync, list_playbooks, plan_sync
from controller.app.playbooks import dry_run_async
from controller.core.settings import Settings
from tests.workflows.conftest import Stack, eventually
from tests.workflows.test_playbook_run import inbox_entry
from workflows import PlaybookRunInput, PlaybookRunReport, RemediationWorkflow, Stage
from workflows.contracts import remediation_workflow_id
from workflows.ports import InboxStatus

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("scenario", ["diurnal_day.yaml"])]


def write_playbook(directory: Path, name: str) -> None:
    """One playbook: take a replica from web and catalog while demand is low, nightly, policy approval."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(
        f"""
name: {name}
description: take one replica from each target while demand is low
version: 3
owner: sre
target:
  nodes: [web, catalog]
triggers:
  - {{type: schedule, cron: "30 2 * * *", timezone: UTC}}
preconditions:
  - demand_utilization < 0.9
steps:
  - name: trim
    action: scale
    params:
      replicas: "{{{{ replicas - 1 }}}}"
    approval: policy
    verify:
      expect: demand_utilization < 0.95
      within: 5m
limits:
  max_duration: 10m
  max_nodes: 5
""",
        encoding="utf-8",
    )


def playbook_settings(stack: Stack, directory: Path) -> Settings:
    """The stack's settings (so its home, database and approval key) with the playbooks and the worker's queue.

    Same home, so `DecisionSigner.from_settings` reads the very key file the stack's worker was built with
    (`stack.services.signer`): the schedule's runs carry the key the worker checks decisions against.
    The timeouts are the workflow tests' fast ones, so the auto-approved step verifies in seconds.
    """
    return Settings(
        home=stack.settings.home,
        policies_dir=stack.settings.policies_dir,
        playbooks_dir=directory,
        temporal_task_queue=stack.task_queue,
        approval_timeout_seconds=60.0,
        approval_expiry_seconds=60.0,
        verification_window_seconds=1.0,
        verification_settle_seconds=30.0,
    )


def replicas(stack: Stack, node: str) -> int:
    """A node's replicas in the simulated estate now."""
    return stack.simulator.snapshot().node(node).replicas


async def run_ids(client: Client, name: str) -> list[str]:
    """Workflow ids of the runs of playbook `name`'s first schedule (`playbook-run-NAME-<time>`)."""
    query = f"WorkflowType = 'PlaybookRunWorkflow' AND WorkflowId STARTS_WITH 'playbook-run-{name}-'"
    return [w.id async for w in client.list_workflows(query)]


async def open_workflows(client: Client, task_queue: str) -> set[str]:
    """Ids of the running workflows on `task_queue` that visibility shows now."""
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    return {w.id async for w in client.list_workflows(query)}


async def terminate_if_open(client: Client, workflow_id: str) -> None:
    """Terminate a workflow unless it has ended already."""
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND and "already completed" not in exc.message:
            raise


async def delete_schedule(client: Client, schedule_id: str) -> None:
    """Delete a schedule unless it is gone already."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def test_a_synced_schedule_triggered_now_runs_the_playbook_and_reports(stack: Stack, tmp_path: Path) -> None:
    name = f"trim-nightly-{uuid.uuid4().hex[:8]}"
    schedule_id = f"playbook-{name}"
    settings = playbook_settings(stack, tmp_path / "playbooks")
    write_playbook(settings.playbooks_dir, name)
    client = stack.client
    parked: str | None = None
    try:
        first = await plan_sync(client, settings)
        assert [c.schedule_id for c in first.create] == [schedule_id]
        assert not (first.update or first.delete or first.kept or first.problems)
        await apply_sync(client, first)
        # The runs carry the worker's own approval key, or no human decision on a parked step would count.
        action = (await client.get_schedule_handle(schedule_id).describe()).schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.task_queue == stack.task_queue
        [run_input] = await client.data_converter.decode(action.args, [PlaybookRunInput])
        assert run_input.approval_key == stack.services.signer.public_key_b64
        # Other tests' `playbook-*` schedules share the dev server; only this one is ours to judge.
        second = await plan_sync(client, settings)
        assert schedule_id in second.unchanged
        assert not [c for c in (*second.create, *second.update, *second.delete) if c.schedule_id == schedule_id]

        assert (replicas(stack, "web"), replicas(stack, "catalog")) == (7, 9)
        await client.get_schedule_handle(schedule_id).trigger()
        found = await eventually(lambda: run_ids(client, name), lambda ids: len(ids) == 1)
        run_id = found[0]
        handle: WorkflowHandle[Any, PlaybookRunReport] = client.get_workflow_handle(
            run_id, result_type=PlaybookRunReport
        )
        report = await handle.result()

        assert (report.run_id, report.playbook, report.version, report.trigger) == (run_id, name, 3, "schedule")
        nodes = {n.node: n for n in report.nodes}
        assert set(nodes) == {"web", "catalog"}
        catalog, web = nodes["catalog"], nodes["web"]
        assert catalog.outcome == "ran" and catalog.stage is Stage.COMPLETED, catalog
        assert web.outcome == "waiting_approval" and web.stage is Stage.AWAITING_APPROVAL, web
        assert report.status == "waiting_approval"
        assert (replicas(stack, "web"), replicas(stack, "catalog")) == (7, 8)

        assert web.proposal_id is not None
        parked = remediation_workflow_id(web.proposal_id)
        await inbox_entry(stack, web.proposal_id, InboxStatus.PENDING)
        state = await client.get_workflow_handle(parked).query(RemediationWorkflow.state)
        assert state.stage is Stage.AWAITING_APPROVAL

        assert stack.services.playbook_runs is not None
        assert await stack.services.playbook_runs.get(run_id) == report

        async def row_of_ours() -> PlaybookRow:
            return next(r for r in await list_playbooks(client, settings) if r.name == name)

        row = await eventually(row_of_ours, lambda r: r.last_run is not None and r.last_run.status == "completed")
        assert (row.schedule_id, row.version, row.synced, row.problem) == (schedule_id, 3, True, None)
        assert row.last_run is not None
        assert (row.last_run.workflow_id, row.last_run.result) == (run_id, report.status)
        assert row.last_run.summary == report.summary()
    finally:
        await delete_schedule(client, schedule_id)
        # The parked child, and on a failure anything else of ours still open.
        still_open = await open_workflows(client, stack.task_queue)
        for workflow_id in still_open | ({parked} if parked else set()):
            await terminate_if_open(client, workflow_id)


async def test_a_dry_run_changes_nothing_and_says_what_each_node_would_do(stack: Stack, tmp_path: Path) -> None:
    name = f"trim-dry-{uuid.uuid4().hex[:8]}"
    settings = playbook_settings(stack, tmp_path / "playbooks")
    write_playbook(settings.playbooks_dir, name)
    ledger = LedgerReader.open(settings)
    inbox = SqlApprovalInbox(ledger.engine)
    assert stack.services.playbook_runs is not None
    before = (replicas(stack, "web"), replicas(stack, "catalog"), ledger.size())
    assert before == (7, 9, 0)

    report = await dry_run_async(
        name, settings, twin=WallClockSimulatorSource(stack.simulator), gate=stack.services.gate
    )

    assert {(v.node, v.verdict) for v in report.steps} == {("catalog", "auto"), ("web", "queue")}
    assert {v.node: v.action for v in report.steps} == {"catalog": "scale catalog -> 8", "web": "scale web -> 6"}
    assert (replicas(stack, "web"), replicas(stack, "catalog"), ledger.size()) == before
    assert inbox.list(include_closed=True) == []
    assert await stack.services.playbook_runs.list() == []
    ledger.engine.dispose()
