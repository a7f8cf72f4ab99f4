"""Trust, on the real dev server: forged decisions refused, cancels attributed, checks at the moment of action.

Each test drives a real RemediationWorkflow (or AgentLoopWorkflow) with the real
ledger, inbox, Rego gate and simulator; only the pager is a recording stand-in.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from agents import AgentState, decide
from controller.adapters.live_twin import WallClockSimulatorSource, live_scenario
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.decision_signer import DecisionSigner
from controller.app.worker import Services, activities_of, build_worker
from controller.core.settings import Settings
from controller.testing import RecordingNotifier
from tests.workflows.conftest import Stack, eventually, policies_without_freezes, signed_update
from tests.workflows.test_remediation import ALICE, BOB, CAROL, approve_until_quorum, start, wait_stage
from twin.scenario import Scenario
from twin.simulator import Simulator
from twin.sources import FileSource
from workflows import (
    AgentActivities,
    AgentLoopInput,
    AgentLoopWorkflow,
    ApproveInput,
    Principal,
    RemediationInput,
    RemediationWorkflow,
    Stage,
    Timeouts,
)
from workflows.activities import DeliberateInput, DeliberateResult
from workflows.agent_loop import AgentLoopState
from workflows.contracts import CancelInput
from workflows.policy import Requester
from workflows.ports import Notification

pytestmark = pytest.mark.integration

VIEWER_AS_SRE = Principal(id="mallory", roles=["sre"], team="edge")


async def trail_kinds(stack: Stack, proposal_id: str) -> list[str]:
    return [r.kind.value for r in await stack.services.ledger.trail(proposal_id)]


async def test_unsigned_and_forged_approvals_are_refused(stack: Stack) -> None:
    proposal = stack.proposal()
    handle = await start(stack, proposal)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    state = await handle.query(RemediationWorkflow.state)
    attacker = DecisionSigner.generate()
    forged_key = attacker.sign(
        "approve", proposal_id=state.proposal_id, plan_hash=state.plan_hash, principal=VIEWER_AS_SRE, text=""
    )
    # Signed by the real service for a viewer, then the update claims sre roles for the same person.
    as_viewer = stack.services.signer.sign(
        "approve",
        proposal_id=state.proposal_id,
        plan_hash=state.plan_hash,
        principal=Principal(id="mallory", roles=["viewer"]),
        text="",
    )
    other_plan = stack.services.signer.sign(
        "approve", proposal_id=state.proposal_id, plan_hash="0" * 64, principal=ALICE, text=""
    )
    stale = stack.services.signer.sign(
        "approve", proposal_id=state.proposal_id, plan_hash=state.plan_hash, principal=ALICE, text=""
    ).model_copy(update={"issued_at": datetime.now(UTC) - timedelta(hours=1)})
    attempts = {
        "unsigned, unknown user": ApproveInput(principal=Principal(id="nobody", roles=["sre"])),
        "unsigned, viewer claiming sre": ApproveInput(principal=VIEWER_AS_SRE),
        "signed with another key": ApproveInput(principal=VIEWER_AS_SRE, signed=forged_key),
        "roles changed after signing": ApproveInput(principal=VIEWER_AS_SRE, signed=as_viewer),
        "signature for another plan": ApproveInput(principal=ALICE, signed=other_plan),
        "stale signature": ApproveInput(principal=ALICE, signed=stale),
    }
    for name, attempt in attempts.items():
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RemediationWorkflow.approve, attempt)
            pytest.fail(f"{name}: accepted")
    state = await handle.query(RemediationWorkflow.state)
    assert state.approvals == [] and state.stage == Stage.AWAITING_APPROVAL
    assert "approved" not in await trail_kinds(stack, proposal.id)
    # The genuine article still counts, and its signature is kept in the trail for auditors.
    genuine = await signed_update(stack.services.signer, handle, "approve", ALICE, "looks right")
    assert genuine.counted
    approved = [r for r in await stack.services.ledger.trail(proposal.id) if r.kind.value == "approved"]
    assert approved[0].payload["details"]["signed_decision"]["signature"]
    await signed_update(stack.services.signer, handle, "reject", BOB, "test over")
    await handle.result()


async def test_a_run_without_a_key_checks_decisions_against_the_worker_key(stack: Stack) -> None:
    """Runs started before keys were in inputs (0.1.0) still refuse unsigned decisions after the upgrade."""
    proposal = stack.proposal()
    handle = await start(stack, proposal, approval_key=None)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    forged = await handle.execute_update(RemediationWorkflow.approve, ApproveInput(principal=VIEWER_AS_SRE))
    assert not forged.counted and any("unsigned" in r for r in forged.reasons), forged
    genuine = await signed_update(stack.services.signer, handle, "approve", ALICE)
    assert genuine.counted
    assert (await handle.query(RemediationWorkflow.state)).approvals == ["alice"]
    await signed_update(stack.services.signer, handle, "reject", BOB, "test over")
    await handle.result()


async def test_a_cancel_names_who_and_why(stack: Stack) -> None:
    proposal = stack.proposal()
    handle = await start(stack, proposal, timeouts=Timeouts(verification_window_seconds=600))
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
    await wait_stage(handle, Stage.VERIFYING)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RemediationWorkflow.request_cancel,
            CancelInput(principal=VIEWER_AS_SRE, reason="forged"),
        )
    await signed_update(stack.services.signer, handle, "cancel", CAROL, "the sale started")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    cancelled = [r for r in await stack.services.ledger.trail(proposal.id) if r.kind.value == "cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0].actor == "user:carol"
    assert (cancelled[0].payload["by"], cancelled[0].payload["reason"]) == ("carol", "the sale started")
    assert cancelled[0].payload["details"]["signed_decision"]["signature"]


async def test_a_cancel_through_temporal_directly_is_recorded_as_unattributed(stack: Stack) -> None:
    proposal = stack.proposal()
    handle = await start(stack, proposal)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    cancelled = [r for r in await stack.services.ledger.trail(proposal.id) if r.kind.value == "cancelled"]
    assert cancelled[0].payload["by"] == "unknown" and "without an attributed request" in cancelled[0].payload["reason"]


async def test_execution_is_denied_when_the_twin_went_stale_after_approval(stack: Stack, tmp_path: Path) -> None:
    """The safety policy is asked again at the moment of action, with the twin as it is then."""
    stale = stack.simulator.snapshot().model_copy(update={"observed_at": datetime.now(UTC) - timedelta(hours=1)})
    stale_file = tmp_path / "stale.json"
    stale_file.write_text(stale.model_dump_json())
    proposal = stack.proposal()
    before = stack.simulator.snapshot().node("gateway").replicas
    stack.services.twin = FileSource(stale_file)
    queue = f"test-{uuid.uuid4()}"
    async with build_worker(stack.client, queue, stack.services):
        stack.task_queue = queue
        handle = await start(stack, proposal)
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await approve_until_quorum(stack, handle, ALICE, BOB, CAROL)
        result = await handle.result()
    assert result.stage == Stage.DENIED and result.steps_applied == 0, result
    assert any("moment of action" in r or "old" in r or "stale" in r for r in result.reasons), result.reasons
    records = await stack.services.ledger.trail(proposal.id)
    rechecks = [r for r in records if r.kind.value == "policy_evaluated" and r.payload["details"].get("phase")]
    assert len(rechecks) == 1 and rechecks[0].payload["allow"] is False
    assert "step_started" not in [r.kind.value for r in records]
    assert "policy_denied" in stack.notifier.kinds()
    assert stack.simulator.snapshot().node("gateway").replicas == before


async def test_a_policy_deny_is_notified(stack: Stack) -> None:
    proposal = stack.proposal()
    stale = proposal.model_copy(update={"observed_at": proposal.observed_at - timedelta(hours=2)})
    handle = await start(stack, stale)
    assert (await handle.result()).stage == Stage.DENIED
    assert "policy_denied" in stack.notifier.kinds()


class _FailingSecondTick:
    """The real deliberation, except the second tick fails the way a bad snapshot would."""

    def __init__(self, real: AgentActivities) -> None:
        self.real = real
        self.calls = 0

    @activity.defn(name="deliberate")
    async def deliberate(self, input: DeliberateInput) -> DeliberateResult:
        self.calls += 1
        if self.calls == 2:
            raise ApplicationError("non-finite capacity on node 'api'", type="DeliberationFailed", non_retryable=True)
        return await self.real.deliberate(input)


async def test_the_loop_survives_a_failing_tick(stack: Stack) -> None:
    real = AgentActivities(stack.services.twin, stack.services.desires)
    failing = _FailingSecondTick(real)
    activities: list[Any] = [a for a in activities_of(stack.services) if getattr(a, "__name__", "") != "deliberate"]
    queue = f"test-{uuid.uuid4()}"
    from temporalio.worker import Worker

    async with Worker(
        stack.client,
        task_queue=queue,
        workflows=[RemediationWorkflow, AgentLoopWorkflow],
        activities=[*activities, failing.deliberate],
    ):
        handle = await stack.client.start_workflow(
            AgentLoopWorkflow.run,
            AgentLoopInput(
                twin_id="shop",
                tick_seconds=0.3,
                max_ticks=3,
                approval_key=stack.services.signer.public_key_b64,
                timeouts=Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
            ),
            id=f"loop-{uuid.uuid4()}",
            task_queue=queue,
        )
        status = await handle.result()
        for wid in set(status.open.values()):
            child = stack.client.get_workflow_handle(wid)
            await eventually(
                functools.partial(child.query, RemediationWorkflow.state),
                lambda s: s.stage in (Stage.AWAITING_APPROVAL, Stage.ESCALATED),
            )
            await signed_update(stack.services.signer, child, "reject", ALICE, "test over")
            await child.result()
    assert status.ticks_done == 3 and status.failed_ticks == 1, status
    assert "non-finite" in (status.last_error or "")
    assert "loop_tick_failed" in stack.notifier.kinds()
    records = await stack.services.ledger.trail("agent-loop/shop")
    assert any("tick 1 skipped" in r.payload["reason"] for r in records), [r.payload for r in records]


async def test_a_rejected_plan_is_not_proposed_again_by_the_loop(stack: Stack) -> None:
    handle = await stack.client.start_workflow(
        AgentLoopWorkflow.run,
        AgentLoopInput(
            twin_id="shop",
            tick_seconds=0.3,
            approval_key=stack.services.signer.public_key_b64,
            timeouts=Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
        ),
        id=f"loop-{uuid.uuid4()}",
        task_queue=stack.task_queue,
    )
    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: bool(s.open))
    child = stack.client.get_workflow_handle(next(iter(status.open.values())))
    await eventually(lambda: child.query(RemediationWorkflow.state), lambda s: s.stage == Stage.AWAITING_APPROVAL)
    await signed_update(stack.services.signer, child, "reject", ALICE, "not during the sale")
    await child.result()
    ticks = (await handle.query(AgentLoopWorkflow.state)).ticks_done
    # `suppressed` is what the latest tick held back; a tick whose findings (noisy demand) asked for nothing
    # holds nothing back, so keep every hold seen while five ticks pass, and one at least.
    held: list[str | None] = []

    def five_ticks_with_a_hold(s: AgentLoopState) -> bool:
        held.extend(p.by for p in s.suppressed)
        return s.ticks_done >= ticks + 5 and bool(held)

    status = await eventually(lambda: handle.query(AgentLoopWorkflow.state), five_ticks_with_a_hold, within=30)
    await handle.terminate("test over")
    assert status.proposals_started == 1 and not status.open, status
    assert set(held) == {"alice"}, held


def _quiet_estate() -> Simulator:
    """Ten independent standard-tier services, one at risk: its fix is low risk and auto-approved."""
    ids = [f"svc-{i}" for i in range(10)]
    scenario = Scenario.model_validate(
        {
            "twin_id": "shop",
            "start": datetime.now(UTC),
            "seed": 1,
            "noise": 0.0,
            "duration": 7200,
            "nodes": [
                {"id": n, "kind": "service", "replicas": 3 if n == "svc-0" else 4, "capacity_per_replica": 100.0,
                 "min_replicas": 1, "max_replicas": 12, "tags": {"team": "shop", "tier": "standard"}}
                for n in ids
            ],
            "edges": [],
            "load": {n: [{"kind": "constant", "rate": 260.0}] for n in ids},
        }
    )  # fmt: skip
    return Simulator(live_scenario(scenario, datetime.now(UTC)))


class _SlowPager(RecordingNotifier):
    """A pager that takes its time over the auto-approval notice: until the freeze has begun."""

    def __init__(self, until: datetime) -> None:
        super().__init__()
        self.until = until

    async def notify(self, notification: Notification) -> None:
        await super().notify(notification)
        if notification.kind.value == "auto_approved":
            await asyncio.sleep(max(0.0, (self.until - datetime.now(UTC)).total_seconds()) + 0.5)


async def test_execution_is_denied_when_a_freeze_began_after_approval(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    """Auto-approved before a freeze, about to run after it began: the check at the moment of action denies."""
    policies = policies_without_freezes(tmp_path / "policies")
    data = json.loads((policies / "data.json").read_text())
    # Far enough ahead that the first policy answer comes before it even on a loaded machine (the session's
    # dev server is already up); the pager then holds the run until the freeze has begun.
    begins = datetime.now(UTC) + timedelta(seconds=8)
    data["twinops"]["config"]["safety"]["freeze_windows"] = [
        {
            "name": "starts-during-the-test",
            "start": begins.isoformat().replace("+00:00", "Z"),
            "end": (begins + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "required_approvals": 2,
            "approver_groups": ["sre-leads"],
        }
    ]
    (policies / "data.json").write_text(json.dumps(data))
    settings = Settings(home=tmp_path, temporal_ui=False, policies_dir=policies)
    simulator = _quiet_estate()
    services = Services.from_settings(settings, simulator=simulator)
    pager = _SlowPager(until=begins)
    services.notifier = pager
    source = WallClockSimulatorSource(simulator)
    source.advance()
    proposal = decide(AgentState(), simulator.snapshot(), services.desires, now=datetime.now(UTC)).proposals[0]
    queue = f"freeze-{uuid.uuid4().hex[:8]}"
    async with build_worker(temporal.client, queue, services):
        handle = await temporal.client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=proposal,
                requester=Requester(kind="agent", id="bdi"),
                approval_key=services.signer.public_key_b64,
            ),
            id=f"remediation-{proposal.id}",
            task_queue=queue,
        )
        result = await asyncio.wait_for(handle.result(), 60)
    trail = [r.kind.value for r in await services.ledger.trail(proposal.id)]
    assert "approved" in trail, ("auto-approved before the freeze began", result.reasons)
    assert result.stage == Stage.DENIED and result.steps_applied == 0, result
    assert any("freeze" in r for r in result.reasons), result.reasons
    assert "step_started" not in trail
    assert pager.kinds()[-1] == "policy_denied"
    assert simulator.snapshot().node("svc-0").replicas == 3
