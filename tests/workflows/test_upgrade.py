"""Upgrade: remediations started by the previous release finish on this release's worker.

The previous release is its git commit (tests/workflows/histories/MANIFEST.json), taken
out with `git archive` and run as it shipped: its `twinops worker` in a subprocess, and a
starter script importing its modules. One remediation is left waiting for approval and
one inside its verification timer; that worker is stopped, this release's worker takes
over the task queue, the waiting one is approved (as this release's approval service
signs decisions), and both must complete. The estate is an HTTP stand-in that outlives
both workers, so what the old worker did is what the new one verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters.temporal_server import TemporalRuntime
from controller.app.decision_signer import DecisionSigner
from controller.app.worker import Services, build_worker
from controller.core.settings import Settings
from tests.workflows.conftest import eventually, make_simulator, policies_without_freezes, signed_update, stage_of
from tests.workflows.estate_server import EstateServer
from tests.workflows.history_store import ROOT, current_version, load_manifest, version_key
from workflows import Principal, RemediationResult, Stage

pytestmark = pytest.mark.integration

SECRET = "upgrade-test-secret"
APPROVERS = [Principal(id=n, roles=["sre"], team=t) for n, t in (("alice", "edge"), ("bob", "payments"))]

# Runs with the previous release's modules first on sys.path: only APIs that release had (0.2.0: decisions
# are signed by the approval service's key, which its worker and this starter share through TWINOPS_HOME).
STARTER = """
import asyncio, json, os, sys, urllib.request
from datetime import UTC, datetime
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from agents import AgentState, decide, load_desires
from controller.app.decision_signer import DecisionSigner
from controller.core.settings import Settings
from twin.contract import Snapshot
from workflows import ApproveInput, Principal, RemediationInput, RemediationWorkflow, Timeouts
from workflows.policy import Requester

async def main(address, queue, snapshot_url):
    snapshot = Snapshot.model_validate_json(urllib.request.urlopen(snapshot_url).read())
    proposal = decide(AgentState(), snapshot, load_desires(None), now=datetime.now(UTC)).proposals[0]
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    signer = DecisionSigner.from_settings(Settings())
    handles = {}
    for name, window in (("waiting", 8), ("verifying", 30)):
        handles[name] = await client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=proposal,
                requester=Requester(kind="agent", id="bdi"),
                timeouts=Timeouts(approval_seconds=900, expiry_seconds=900, verification_window_seconds=window),
                approval_key=signer.public_key_b64,
            ),
            id=f"remediation-{proposal.id}-{name}",
            task_queue=queue,
        )
    async def stage(h):
        return (await h.query(RemediationWorkflow.state)).stage.value
    for h in handles.values():
        while await stage(h) != "awaiting_approval":
            await asyncio.sleep(0.2)
    for who, team in (("alice", "edge"), ("bob", "payments"), ("carol", "payments")):
        principal = Principal(id=who, roles=["sre"], team=team)
        signed = signer.sign(
            "approve", proposal_id=proposal.id, plan_hash=proposal.plan_hash, principal=principal, text=""
        )
        vote = await handles["verifying"].execute_update(
            RemediationWorkflow.approve, ApproveInput(principal=principal, signed=signed)
        )
        if vote.quorum_met:
            break
    while await stage(handles["verifying"]) != "verifying":
        await asyncio.sleep(0.2)
    print(json.dumps({"proposal": proposal.id, **{k: h.id for k, h in handles.items()}}))

asyncio.run(main(*sys.argv[1:4]))
# Leave without finalizing: Temporal's Rust runtime may still hold a thread, and finalizing then aborts
# with "PyGILState_Release" (sdk-python issue #300), as `twinops` itself avoids in controller.cli._exit.
sys.stdout.flush()
os._exit(0)
"""


def previous_release() -> tuple[str, str]:
    """(version, commit) of the newest release older than the version being built."""
    current = version_key(current_version())
    older = {
        v: e["commit"] for v, e in load_manifest()["releases"].items() if version_key(v) < current and e.get("commit")
    }
    if not older:
        pytest.skip(f"version {current_version()} is the first release: nothing to upgrade from")
    version = max(older, key=version_key)
    return version, older[version]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The previous release's source tree, as its commit has it."""
    version, commit = previous_release()
    if shutil.which("git") is None:
        pytest.fail("git is needed to take out the previous release")
    dest = tmp_path / f"release-{version}"
    dest.mkdir()
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], check=False)
    if found.returncode != 0:
        pytest.fail(f"release {version}: commit {commit} is not in this clone (a shallow clone?): fetch its history")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "twin", "agents", "workflows", "controller", "policies"],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


@pytest.fixture
def estate() -> Iterator[EstateServer]:
    """The hidden-downstream estate behind an HTTP API: both workers drive and observe the same one."""
    with EstateServer(make_simulator("hidden_downstream.yaml"), SECRET) as server:
        yield server


async def test_in_flight_remediations_of_the_previous_release_complete_after_upgrade(
    temporal: TemporalRuntime, estate: EstateServer, release: Path, tmp_path: Path
) -> None:
    assert temporal.info is not None
    queue = f"upgrade-{uuid.uuid4()}"
    home = tmp_path / "home"
    estate.source.advance()
    old_env = {
        **os.environ,
        "PYTHONPATH": str(release),
        "TWINOPS_HOME": str(home),
        "TWINOPS_TEMPORAL_ADDRESS": temporal.info.address,
        "TWINOPS_POLICIES_DIR": str(policies_without_freezes(tmp_path / "old-policies", release / "policies")),
        "TWINOPS_ACTUATOR": "webhook",
        "TWINOPS_ACTUATOR_URL": estate.url + "/actions",
        "TWINOPS_ACTUATOR_SECRET": SECRET,
        "TWINOPS_TWIN_SOURCE": "http",
        "TWINOPS_TWIN_URL": estate.snapshot_url(),
        "TWINOPS_LOG_FORMAT": "json",
    }
    log = tmp_path / "old-worker.log"
    old_worker = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, started once, not awaited
        [sys.executable, "-c", "from controller.cli import main; main()", "worker", "--task-queue", queue],
        env=old_env,
        cwd=tmp_path,  # not the repo: its modules must not shadow the release's
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        started = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", STARTER, temporal.info.address, queue, estate.snapshot_url()],
            env=old_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert started.returncode == 0, (started.stderr[-3000:], log.read_text()[-3000:])
        ids = json.loads(started.stdout.strip().splitlines()[-1])
    finally:
        old_worker.send_signal(signal.SIGTERM)
        try:
            old_worker.wait(30)
        except subprocess.TimeoutExpired:
            old_worker.kill()

    client = temporal.client
    waiting = client.get_workflow_handle(ids["waiting"], result_type=RemediationResult)
    verifying = client.get_workflow_handle(ids["verifying"], result_type=RemediationResult)
    settings = Settings(
        home=home,
        temporal_ui=False,
        policies_dir=policies_without_freezes(tmp_path / "new-policies"),
        actuator="webhook",
        actuator_url=estate.url + "/actions",
        actuator_secret=SECRET,
        twin_source="http",
        twin_url=estate.snapshot_url(),
    )
    services = Services.from_settings(settings)
    async with build_worker(client, queue, services):
        # The new worker replays both histories (a non-determinism error would stall them here).
        assert (
            await eventually(lambda: stage_of(waiting), lambda s: s == "awaiting_approval", 30) == "awaiting_approval"
        )
        signer = DecisionSigner.from_file(settings.resolved_approval_key, create=False)
        for principal in APPROVERS:
            vote = await signed_update(signer, waiting, "approve", principal, "after the upgrade")
            if vote.quorum_met:
                break
        results = await asyncio.wait_for(asyncio.gather(waiting.result(), verifying.result()), timeout=180)
    for result in results:
        assert result.stage == Stage.COMPLETED, (result.reasons, log.read_text()[-2000:])
    trail = await services.ledger.trail(ids["proposal"])
    duplicates = [k for k, n in Counter(r.event_id for r in trail).items() if n > 1]
    assert not duplicates, duplicates
    kinds = Counter(r.kind.value for r in trail)
    assert kinds["completed"] == 2 and kinds["verified"] == 2
    approved_after = [
        r for r in trail if r.kind.value == "approved" and r.payload.get("comment") == "after the upgrade"
    ]
    assert approved_after and approved_after[0].payload["details"]["signed_decision"]["signature"]
