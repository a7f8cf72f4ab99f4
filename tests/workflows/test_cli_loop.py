"""The SRE's commands, run as a user runs them (subprocesses), against a live stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle

from controller.adapters.identity import Identities
from controller.adapters.temporal_server import TemporalRuntime
from controller.core.db import create_engine
from tests.workflows.conftest import Stack, eventually, stage_of
from workflows import RemediationInput, RemediationResult, RemediationWorkflow, Stage, Timeouts
from workflows.policy import Requester

pytestmark = pytest.mark.integration

TWINOPS = Path(sys.executable).with_name("twinops")


async def twinops(
    stack: Stack, temporal: TemporalRuntime, token: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    assert temporal.info is not None
    env = {
        **os.environ,
        "TWINOPS_HOME": str(stack.settings.home),
        "TWINOPS_TEMPORAL_ADDRESS": temporal.info.address,
        "COLUMNS": "200",
    }
    env.pop("TWINOPS_TOKEN", None)
    if token:
        env["TWINOPS_TOKEN"] = token
    return await asyncio.to_thread(
        subprocess.run, [str(TWINOPS), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def started(stack: Stack, verification_seconds: float = 5) -> tuple[WorkflowHandle[Any, RemediationResult], str]:
    proposal = stack.proposal()
    handle = await stack.client.start_workflow(
        RemediationWorkflow.run,
        RemediationInput(
            proposal=proposal,
            requester=Requester(kind="agent", id="bdi"),
            timeouts=Timeouts(verification_window_seconds=verification_seconds),
            approval_key=stack.services.signer.public_key_b64,
        ),
        id=f"remediation-{proposal.id}-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
    )
    await eventually(lambda: stage_of(handle), lambda s: s == "awaiting_approval")
    return handle, proposal.id


def users(stack: Stack) -> dict[str, str]:
    ids = Identities(create_engine(stack.settings.resolved_database_url))
    return {
        "alice": ids.add_user("alice", "approver", "edge", groups=["sre"]),
        "bob": ids.add_user("bob", "approver", "payments", groups=["sre"]),
        "victor": ids.add_user("victor", "viewer", "edge"),
    }


async def test_queue_and_approve_through_the_cli(stack: Stack, temporal: TemporalRuntime) -> None:
    tokens = users(stack)
    handle, proposal_id = await started(stack)
    queue = await twinops(stack, temporal, None, "queue", "--json")
    assert queue.returncode == 0, queue.stderr
    entries = json.loads(queue.stdout)
    assert [e["proposal_id"] for e in entries] == [proposal_id] and entries[0]["status"] == "pending"

    short = proposal_id[:8]
    viewer = await twinops(stack, temporal, tokens["victor"], "approve", short)
    assert viewer.returncode == 2 and "approver role" in viewer.stderr
    nobody = await twinops(stack, temporal, None, "approve", short)
    assert nobody.returncode == 2 and "TWINOPS_TOKEN" in nobody.stderr

    first = await twinops(stack, temporal, tokens["alice"], "approve", short, "--comment", "looks right")
    assert first.returncode == 0, first.stderr
    assert "counted" in first.stdout
    again = await twinops(stack, temporal, tokens["alice"], "approve", short)
    assert again.returncode == 2 and "already approved" in again.stderr
    second = await twinops(stack, temporal, tokens["bob"], "approve", short)
    assert second.returncode == 0 and "quorum met" in second.stdout, second.stdout + second.stderr

    result = await handle.result()
    assert result.stage == Stage.COMPLETED
    trail = await stack.services.ledger.trail(proposal_id)
    approved = [r for r in trail if r.kind.value == "approved"]
    assert [r.actor for r in approved] == ["user:alice", "user:bob"]
    assert approved[0].payload["comment"] == "looks right"
    after = await twinops(stack, temporal, tokens["alice"], "approve", short)
    assert after.returncode == 2 and "no longer pending" in after.stderr


async def test_reject_and_cancel_through_the_cli(stack: Stack, temporal: TemporalRuntime) -> None:
    tokens = users(stack)
    handle, proposal_id = await started(stack)
    rejected = await twinops(stack, temporal, tokens["alice"], "reject", proposal_id, "--reason", "change freeze")
    assert rejected.returncode == 0, rejected.stderr
    assert (await handle.result()).stage == Stage.REJECTED

    handle, proposal_id = await started(stack, verification_seconds=600)
    for who in ("alice", "bob"):
        vote = await twinops(stack, temporal, tokens[who], "approve", proposal_id)
        assert vote.returncode == 0, vote.stderr
    await eventually(lambda: stage_of(handle), lambda s: s == "verifying")
    shown = await twinops(stack, temporal, tokens["victor"], "show", proposal_id, "--json")
    assert json.loads(shown.stdout)["stage"] == "verifying"
    cancelled = await twinops(stack, temporal, tokens["alice"], "cancel", proposal_id, "--reason", "sale started")
    assert cancelled.returncode == 0, cancelled.stderr
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert stack.simulator.snapshot().node("gateway").replicas == 4
    cancel_events = [r for r in await stack.services.ledger.trail(proposal_id) if r.kind.value == "cancelled"]
    assert [(r.actor, r.payload["by"], r.payload["reason"]) for r in cancel_events] == [
        ("user:alice", "alice", "sale started")
    ], "the trail names who cancelled and why"
