"""Pre-approving a playbook run end to end: the dev server, the real stores, the Rego approval policy.

An approver pre-approves the next run; the run claims it, and its step that needs a human runs
on it (the trail names the pre-approval and the approver). The next run finds it used and parks.
The user who started a run by hand cannot pre-approve its steps (self-approval).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from agents.playbook import Playbook
from controller.adapters.identity import Identities
from controller.adapters.preapprovals import SqlPreapprovalStore
from controller.app.playbooks import load_playbook_file
from controller.app.preapprovals import PreapprovalError, PreapprovalService
from controller.core.db import create_engine
from controller.core.errors import AuthorizationError
from tests.workflows.conftest import Stack
from tests.workflows.test_playbook_run import by_node, replicas, terminate
from tests.workflows.test_remediation import FAST
from workflows import PlaybookRunInput, PlaybookRunReport, PlaybookRunWorkflow, Stage
from workflows.audit import EventKind
from workflows.contracts import remediation_workflow_id

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("scenario", ["diurnal_day.yaml"])]

PLAYBOOK = """
name: trim-by-hand
description: take one replica from catalog, a human approves
version: 1
owner: sre
target:
  nodes: [catalog]
triggers:
  - {type: schedule, cron: "30 2 * * *", timezone: UTC}
steps:
  - name: trim
    action: scale
    params:
      replicas: "{{ replicas - 1 }}"
    approval: always
    verify:
      expect: demand_utilization < 0.95
      within: 1m
limits:
  max_duration: 10m
  max_nodes: 5
"""


class Estate:
    """The stack plus what pre-approving needs: users with tokens and the pre-approval service."""

    def __init__(self, stack: Stack, tmp_path: Path) -> None:
        self.stack = stack
        engine = create_engine(stack.settings.resolved_database_url)
        identities = Identities(engine)
        self.tokens = {
            "alice": identities.add_user("alice", "approver", "edge", groups=["sre"]),
            "bob": identities.add_user("bob", "approver", "payments", groups=["sre"]),
            "victor": identities.add_user("victor", "viewer", "edge"),
        }
        folder = tmp_path / "playbooks"
        folder.mkdir()
        (folder / "trim-by-hand.yaml").write_text(PLAYBOOK)
        self.playbook: Playbook = load_playbook_file(folder / "trim-by-hand.yaml")
        self.service = PreapprovalService(SqlPreapprovalStore(engine), identities, stack.services.signer, folder)

    async def run(
        self, requested_by: str | None = None
    ) -> tuple[WorkflowHandle[Any, PlaybookRunReport], PlaybookRunReport]:
        handle = await self.stack.client.start_workflow(
            PlaybookRunWorkflow.run,
            PlaybookRunInput(
                playbook=self.playbook,
                trigger="manual" if requested_by else "schedule",
                requested_by=requested_by,
                timeouts=FAST,
                approval_key=self.stack.services.signer.public_key_b64,
            ),
            id=f"playbook-run-trim-by-hand-{uuid.uuid4().hex[:8]}",
            task_queue=self.stack.task_queue,
        )
        return handle, await handle.result()


async def test_a_pre_approval_covers_one_run_and_is_refused_to_the_next(stack: Stack, tmp_path: Path) -> None:
    estate = Estate(stack, tmp_path)
    now = datetime.now(UTC)
    record = await estate.service.preapprove(
        estate.tokens["alice"], "trim-by-hand", now, now + timedelta(hours=1), "fine tonight"
    )
    grant = record.grant

    first, report = await estate.run()
    catalog = by_node(report)["catalog"]
    assert catalog.outcome == "ran" and catalog.preapproval_id == grant.id, catalog
    assert report.preapproval == grant.id and report.preapproval_note == f"pre-approval {grant.id} covers this run"
    assert replicas(stack, "catalog") == 8
    assert catalog.proposal_id is not None
    approved = [r for r in await stack.services.ledger.trail(catalog.proposal_id) if r.kind is EventKind.APPROVED]
    assert [(r.actor, r.payload["by"], r.payload["comment"]) for r in approved] == [
        ("user:alice", "alice", "fine tonight")
    ]
    assert approved[0].payload["details"]["preapproval"] == grant.id
    assert approved[0].payload["details"]["playbook_run"] == first.id
    assert approved[0].payload["details"]["signed_decision"]["proposal_id"] == f"preapproval:{grant.id}"

    # The next run in the same window finds it used: its step waits for a human.
    second, again = await estate.run()
    parked = by_node(again)["catalog"]
    assert parked.outcome == "waiting_approval" and parked.preapproval_id is None, parked
    assert again.preapproval is None
    assert again.preapproval_note == f"pre-approval {grant.id} was used by run {first.id}"
    assert replicas(stack, "catalog") == 8
    assert parked.proposal_id is not None
    await terminate(stack, remediation_workflow_id(parked.proposal_id))
    assert (await estate.service.list(estate.tokens["victor"]))[0].used_by_run == first.id
    assert second.id != first.id


async def test_who_started_a_run_by_hand_cannot_pre_approve_its_steps(stack: Stack, tmp_path: Path) -> None:
    estate = Estate(stack, tmp_path)
    now = datetime.now(UTC)
    await estate.service.preapprove(estate.tokens["alice"], "trim-by-hand", now, now + timedelta(hours=1))
    _, report = await estate.run(requested_by="alice")
    catalog = by_node(report)["catalog"]
    assert catalog.outcome == "waiting_approval" and catalog.stage is Stage.AWAITING_APPROVAL, catalog
    assert replicas(stack, "catalog") == 9
    assert catalog.proposal_id is not None
    child = stack.client.get_workflow_handle(remediation_workflow_id(catalog.proposal_id))
    state = await child.query("state")
    assert any("'alice' started this playbook run and cannot approve its steps" in r for r in state["reasons"]), state
    await terminate(stack, child.id)


async def test_pre_approving_asks_an_approver_and_a_run_still_to_come(stack: Stack, tmp_path: Path) -> None:
    estate = Estate(stack, tmp_path)
    now = datetime.now(UTC)
    with pytest.raises(AuthorizationError):
        await estate.service.preapprove(estate.tokens["victor"], "trim-by-hand", now, now + timedelta(hours=1))
    with pytest.raises(PreapprovalError, match="is in the past"):
        await estate.service.preapprove(estate.tokens["alice"], "trim-by-hand", now - timedelta(hours=1), now)
    with pytest.raises(PreapprovalError, match="is not after --run-at"):
        await estate.service.preapprove(estate.tokens["alice"], "trim-by-hand", now, now)
    with pytest.raises(PreapprovalError, match="more than 7 days away"):
        await estate.service.preapprove(estate.tokens["alice"], "trim-by-hand", now, now + timedelta(days=8))
    # Two approvers of the same run join one pre-approval.
    a = await estate.service.preapprove(estate.tokens["alice"], "trim-by-hand", now, now + timedelta(hours=1))
    b = await estate.service.preapprove(estate.tokens["bob"], "trim-by-hand", now, now + timedelta(hours=2))
    assert b.grant.id == a.grant.id and [s.principal.id for s in b.grant.approvals] == ["alice", "bob"]
    assert b.grant.expires_at == a.grant.expires_at
