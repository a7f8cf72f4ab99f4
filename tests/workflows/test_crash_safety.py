"""Crash safety: a worker killed mid-step, and the dev server restarted while a proposal waits.

The worker under test is a real `twinops worker` subprocess, killed with SIGKILL; the
estate it drives is an HTTP estate API in this process (the outside world's stand-in,
speaking the webhook actuator's protocol), so its effects survive the worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents import AgentState, decide, load_desires
from controller.adapters.audit import SqlAuditLedger
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.decision_signer import DecisionSigner
from controller.app.worker import Services, build_worker
from controller.core.settings import Settings
from tests.workflows.conftest import eventually, make_simulator, policies_without_freezes, signed_update, stage_of
from tests.workflows.estate_server import EstateServer
from workflows import Principal, RemediationInput, RemediationResult, RemediationWorkflow, Stage, Timeouts
from workflows.policy import Requester

pytestmark = pytest.mark.integration

SECRET = "crash-test-secret"
APPROVERS = [Principal(id=n, roles=["sre"], team=t) for n, t in (("alice", "edge"), ("bob", "payments"))]
TWINOPS = Path(sys.executable).with_name("twinops")


def _worker(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(TWINOPS), "worker", "--task-queue", queue],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def estate() -> Iterator[EstateServer]:
    """The hidden-downstream estate behind an HTTP API; step 0's request is held so the worker can die in it."""
    with EstateServer(make_simulator("hidden_downstream.yaml"), SECRET) as server:
        yield server


async def test_worker_killed_mid_step_applies_every_step_once(
    temporal: TemporalRuntime, estate: EstateServer, tmp_path: Path
) -> None:
    assert temporal.info is not None
    queue = f"crash-{uuid.uuid4()}"
    env = {
        **os.environ,
        "TWINOPS_HOME": str(tmp_path),
        "TWINOPS_TEMPORAL_ADDRESS": temporal.info.address,
        "TWINOPS_POLICIES_DIR": str(policies_without_freezes(tmp_path / "policies")),
        "TWINOPS_ACTUATOR": "webhook",
        "TWINOPS_ACTUATOR_URL": estate.url + "/actions",
        "TWINOPS_ACTUATOR_SECRET": SECRET,
        "TWINOPS_TWIN_SOURCE": "http",
        "TWINOPS_TWIN_URL": estate.snapshot_url(),
        "TWINOPS_LOG_FORMAT": "json",
    }
    estate.source.advance()
    decision = decide(AgentState(), estate.simulator.snapshot(), load_desires(None), now=datetime.now(UTC))
    proposal = decision.proposals[0]
    workflow_id = f"remediation-{proposal.id}-{uuid.uuid4().hex[:6]}"
    estate.hold_keys = {f"{workflow_id}/step/0"}

    # The worker process signs nothing but checks with this key; the test plays the approval service.
    signer = DecisionSigner.from_file(Settings(home=tmp_path).resolved_approval_key)
    log = tmp_path / "worker.log"
    first = _worker(env, queue, log)
    try:
        handle = await temporal.client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=proposal,
                requester=Requester(kind="agent", id="bdi"),
                # While the worker is dead, step 0 (gateway) is in and step 1 (checkout) is not, so the
                # hidden checkout saturates and queues: the window lets that queue drain before verifying.
                timeouts=Timeouts(approval_seconds=120, expiry_seconds=120, verification_window_seconds=15),
                approval_key=signer.public_key_b64,
            ),
            id=workflow_id,
            task_queue=queue,
        )
        await eventually(lambda: stage_of(handle), lambda s: s == "awaiting_approval", 60)
        for principal in APPROVERS:
            vote = await signed_update(signer, handle, "approve", principal)
            if vote.quorum_met:
                break
        # The estate has applied step 0 and holds the answer: the worker dies before it hears it.
        assert await asyncio.to_thread(estate.held.wait, 60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        estate.release.set()
        second = _worker(env, queue, log)
        try:
            result = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    assert result.stage == Stage.COMPLETED, (result.reasons, log.read_text()[-3000:])
    keys = [f"{workflow_id}/step/{i}" for i in range(len(proposal.actions))]
    assert {k: estate.applied[k] for k in keys} == dict.fromkeys(keys, 1), "every step's effect exactly once"
    assert estate.requests[keys[0]] >= 2, "step 0 was retried after the kill"
    for action in proposal.actions:
        assert estate.simulator.snapshot().node(action.node).replicas == action.replicas  # type: ignore[union-attr]

    ledger = SqlAuditLedger.from_settings(Settings(home=tmp_path))
    trail = await ledger.trail(proposal.id)
    ids = Counter(r.event_id for r in trail)
    assert all(n == 1 for n in ids.values()), "no duplicate audit events"
    kinds = Counter(r.kind.value for r in trail)
    assert kinds["step_started"] == kinds["step_succeeded"] == len(proposal.actions)
    assert kinds["completed"] == 1


async def test_dev_server_restart_while_waiting_for_approval(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, temporal_ui=False, policies_dir=policies_without_freezes(tmp_path / "pol"))
    simulator = make_simulator("hidden_downstream.yaml")
    services = Services.from_settings(settings, simulator=simulator)
    queue = f"restart-{uuid.uuid4()}"
    proposal = decide(AgentState(), (await services.twin.latest()), services.desires, now=datetime.now(UTC)).proposals[
        0
    ]
    workflow_id = f"remediation-{proposal.id}"

    async with TemporalRuntime(settings) as rt, build_worker(rt.client, queue, services):
        handle = await rt.client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=proposal,
                requester=Requester(kind="agent", id="bdi"),
                timeouts=Timeouts(approval_seconds=300, expiry_seconds=300, verification_window_seconds=5),
                approval_key=services.signer.public_key_b64,
            ),
            id=workflow_id,
            task_queue=queue,
        )
        await eventually(lambda: stage_of(handle), lambda s: s == "awaiting_approval", 30)
    # The server is down now; same SQLite file, new process, new port.
    async with TemporalRuntime(settings) as rt, build_worker(rt.client, queue, services):
        handle = rt.client.get_workflow_handle(workflow_id, result_type=RemediationResult)
        assert await stage_of(handle) == "awaiting_approval"
        for principal in APPROVERS:
            result = await signed_update(services.signer, handle, "approve", principal)
            if result.quorum_met:
                break
        outcome = await asyncio.wait_for(handle.result(), timeout=60)
    assert outcome.stage == Stage.COMPLETED, outcome.reasons
    kinds = [r.kind.value for r in await services.ledger.trail(proposal.id)]
    assert kinds.count("approval_requested") == 1 and kinds[-1] == "completed"
