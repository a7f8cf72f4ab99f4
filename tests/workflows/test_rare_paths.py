"""Rare paths of RemediationWorkflow: the real dev server, fakes behind every port (controller.testing).

No SQLite, no Rego engine, no simulator: the gate is scripted, the estate is a dict, so the
interleavings (an approval arriving while the policy is asked, or as the request expires)
are set up exactly rather than raced.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateHandle, WorkflowUpdateStage

from agents import AgentState, Proposal, decide, load_desires
from controller.adapters.temporal_server import TemporalRuntime
from controller.testing import (
    FakeActuator,
    FakePolicyGate,
    FakePorts,
    FakeTwinSource,
    allow,
    deny,
    fake_worker,
    quorum,
)
from tests.workflows.conftest import eventually, stage_of
from twin.contract import Snapshot, parse_snapshot
from workflows import RemediationInput, RemediationResult, RemediationWorkflow, Stage, Timeouts
from workflows.contracts import ApprovalResult, ApproveInput, Principal, RejectInput
from workflows.policy import Requester

pytestmark = pytest.mark.integration

ALICE = Principal(id="alice", roles=["sre"], team="edge")
BOB = Principal(id="bob", roles=["sre"], team="payments")
AGENT = Requester(kind="agent", id="bdi")
# One look at the goals (no settle period): the rare paths here are not about verification timing.
PATIENT = Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=0, verification_settle_seconds=0)
START = ["proposed", "policy_evaluated", "approval_requested"]
EXECUTED = ["step_started", "step_succeeded"] * 2


def estate(now: datetime) -> Snapshot:
    """A saturated gateway (1200 rps on 4 x 200) hiding a saturated checkout (480 on 4 x 110)."""
    return parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": "shop",
            "observed_at": now.isoformat(),
            "nodes": [
                {"id": "gateway", "replicas": 4, "capacity_per_replica": 200.0, "min_replicas": 2,
                 "max_replicas": 20, "external_arrival_rate": 1200.0, "tags": {"team": "edge", "tier": "critical"}},
                {"id": "checkout", "replicas": 4, "capacity_per_replica": 110.0, "min_replicas": 2,
                 "max_replicas": 12, "tags": {"team": "payments", "tier": "critical"}},
            ],
            "edges": [{"source": "gateway", "target": "checkout", "ratio": 0.4}],
        }
    )  # fmt: skip


@dataclass
class Rig:
    """A worker over fakes on its own task queue, and the agent's proposal for the fake estate."""

    client: Client
    task_queue: str
    ports: FakePorts
    proposal: Proposal

    async def start(self, timeouts: Timeouts = PATIENT) -> WorkflowHandle[Any, RemediationResult]:
        return await self.client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=self.proposal,
                requester=AGENT,
                timeouts=timeouts,
                approval_key=self.ports.signer.public_key_b64,
            ),
            id=f"remediation-{self.proposal.id}-{uuid.uuid4().hex[:6]}",
            task_queue=self.task_queue,
        )

    async def send(
        self, handle: WorkflowHandle[Any, Any], kind: Literal["approve", "reject"], who: Principal, text: str = "ok"
    ) -> WorkflowUpdateHandle[ApprovalResult]:
        """A decision signed as the approval service signs it; returns once the workflow accepted it."""
        p = self.proposal
        signed = self.ports.signer.sign(kind, proposal_id=p.id, plan_hash=p.plan_hash, principal=who, text=text)
        if kind == "approve":
            return await handle.start_update(
                RemediationWorkflow.approve,
                ApproveInput(principal=who, comment=text, signed=signed),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
        return await handle.start_update(
            RemediationWorkflow.reject,
            RejectInput(principal=who, reason=text, signed=signed),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )

    def trail(self) -> list[str]:
        return self.ports.ledger.kinds(self.proposal.id)

    def told(self) -> list[str]:
        return self.ports.notifier.kinds(self.proposal.id)


@asynccontextmanager
async def rig(
    temporal: TemporalRuntime, gate: FakePolicyGate | None = None, *, twin_follows_estate: bool = True
) -> AsyncIterator[Rig]:
    """Fakes over a fresh estate; with `twin_follows_estate` off, the twin never changes and no fix verifies."""
    now = datetime.now(UTC)
    snapshot = estate(now)
    actuator = FakeActuator.of(snapshot)
    ports = FakePorts(
        twin=FakeTwinSource(snapshot, estate=actuator if twin_follows_estate else None),
        gate=gate or FakePolicyGate(),
        actuator=actuator,
    )
    decision = decide(AgentState(), snapshot, load_desires(None), now=now)
    queue = f"rare-{uuid.uuid4()}"
    async with fake_worker(temporal.client, queue, ports):
        yield Rig(temporal.client, queue, ports, decision.proposals[0])


async def wait_stage(handle: WorkflowHandle[Any, Any], stage: Stage) -> None:
    await eventually(lambda: stage_of(handle), lambda s: s == stage.value, within=15)


async def test_escalates_then_expires(temporal: TemporalRuntime) -> None:
    async with rig(temporal) as r:
        handle = await r.start(
            Timeouts(approval_seconds=1, expiry_seconds=1, verification_window_seconds=0, verification_settle_seconds=0)
        )
        result = await handle.result()
    assert result.stage == Stage.EXPIRED
    assert result.reasons == ["no quorum before the approval expired"]
    assert r.trail() == [*START, "escalated", "expired", "completed"]
    assert r.told() == ["approval_requested", "escalated", "expired"]
    assert r.ports.inbox.statuses(r.proposal.id) == ["pending", "escalated", "expired"]
    assert r.ports.actuator.attempts == []


async def test_withdraw_while_pending_cancels_without_running(temporal: TemporalRuntime) -> None:
    async with rig(temporal) as r:
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await handle.signal(RemediationWorkflow.withdraw, "the load fell back")
        result = await handle.result()
    assert result.stage == Stage.CANCELLED and result.steps_applied == 0
    assert result.reasons == ["withdrawn: the load fell back"]
    assert r.trail() == [*START, "cancelled", "completed"]
    assert r.ports.ledger.records[-2].actor == "agent:bdi"  # the agent withdrew, not a human
    assert r.told() == ["approval_requested"]
    assert r.ports.inbox.statuses(r.proposal.id) == ["pending", "cancelled"]
    assert r.ports.actuator.attempts == []


async def test_second_approval_waits_for_the_policy_answer_to_the_first(temporal: TemporalRuntime) -> None:
    gate = FakePolicyGate(approval=quorum(2))
    async with rig(temporal, gate) as r:
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        door = gate.hold("approval")
        first = await r.send(handle, "approve", ALICE)
        await asyncio.wait_for(door.arrived.wait(), 10)
        second = await r.send(handle, "approve", BOB)
        # Bob's approval is accepted but queued behind Alice's: the policy has been asked once.
        assert len(gate.approval_inputs) == 1
        door.release()
        alice, bob = await first.result(), await second.result()
        result = await handle.result()
    assert alice.counted and not alice.quorum_met and alice.still_needed == 1
    assert bob.counted and bob.quorum_met and bob.approvals == ["alice", "bob"]
    # Bob's approval was judged against a list that already held Alice's.
    assert [[a.approver.id for a in i.approvals] for i in gate.approval_inputs] == [[], ["alice"]]
    assert result.stage == Stage.COMPLETED, result.reasons
    assert r.trail() == [*START, "approved", "approved", "policy_evaluated", *EXECUTED, "verified", "completed"]
    assert r.ports.actuator.replicas == {"gateway": 8, "checkout": 6}


async def test_reject_arriving_while_an_approval_is_asked_comes_too_late(temporal: TemporalRuntime) -> None:
    gate = FakePolicyGate(approval=quorum(1))
    async with rig(temporal, gate) as r:
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        door = gate.hold("approval")
        approval = await r.send(handle, "approve", ALICE)
        await asyncio.wait_for(door.arrived.wait(), 10)
        rejection = await r.send(handle, "reject", BOB, "not during the sale")
        door.release()
        alice, bob = await approval.result(), await rejection.result()
        result = await handle.result()
    assert alice.counted and alice.quorum_met
    # Bob's rejection waited for the lock, then saw Alice's approval had met the quorum.
    assert not bob.counted and bob.quorum_met and bob.approvals == ["alice"]
    assert bob.reasons == ["proposal is already decided (approved)"]
    assert result.stage == Stage.COMPLETED and result.decided_by is None
    assert "rejected" not in r.trail()
    assert r.trail()[: len(START) + 2] == [*START, "approved", "policy_evaluated"]


async def test_approval_held_by_the_policy_across_expiry_does_not_count(temporal: TemporalRuntime) -> None:
    gate = FakePolicyGate(approval=quorum(1))
    async with rig(temporal, gate) as r:
        handle = await r.start(
            Timeouts(approval_seconds=1, expiry_seconds=2, verification_window_seconds=0, verification_settle_seconds=0)
        )
        await wait_stage(handle, Stage.ESCALATED)
        door = gate.hold("approval")
        approval = await r.send(handle, "approve", ALICE)
        await asyncio.wait_for(door.arrived.wait(), 10)
        await wait_stage(handle, Stage.EXPIRED)
        door.release()
        alice = await approval.result()
        result = await handle.result()
    assert not alice.counted and alice.reasons == ["proposal is no longer pending (stage expired)"]
    assert result.stage == Stage.EXPIRED
    assert r.trail() == [*START, "escalated", "expired", "completed"]
    assert r.told() == ["approval_requested", "escalated", "expired"]
    assert r.ports.actuator.attempts == []


async def test_failing_compensation_escalates_each_step(temporal: TemporalRuntime) -> None:
    async with rig(temporal, twin_follows_estate=False) as r:
        r.ports.actuator.fail("/compensate/", permanent=True)
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        result = await handle.result()
    assert result.stage == Stage.ROLLED_BACK and result.compensations_failed == 2
    failed = ["compensation_started", "compensation_failed", "escalated"]
    assert r.trail() == [
        *START, "approved", "policy_evaluated", *EXECUTED, "verification_failed", *failed, *failed, "completed"
    ]  # fmt: skip
    undone = [e.payload["step_id"] for e in r.ports.ledger.records if e.kind.value == "compensation_started"]
    assert undone == ["step-1", "step-0"]
    assert r.told() == ["approval_requested", "compensation_failed", "compensation_failed", "rolled_back"]
    # A refused compensation is not retried, and the estate is left as the steps made it.
    assert [k.rsplit("/", 2)[-2:] for k in r.ports.actuator.attempts] == [
        ["step", "0"], ["step", "1"], ["compensate", "1"], ["compensate", "0"]
    ]  # fmt: skip
    assert r.ports.actuator.replicas == {"gateway": 8, "checkout": 6}


async def test_compensation_failing_once_is_retried_under_its_key(temporal: TemporalRuntime) -> None:
    async with rig(temporal, twin_follows_estate=False) as r:
        r.ports.actuator.fail("/compensate/1", permanent=False, times=1)
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        result = await handle.result()
    assert result.stage == Stage.ROLLED_BACK and result.compensations_failed == 0
    undone = ["compensation_started", "compensated"] * 2
    assert r.trail() == [*START, "approved", "policy_evaluated", *EXECUTED, "verification_failed", *undone, "completed"]
    assert r.told() == ["approval_requested", "rolled_back"]
    assert [k for k in r.ports.actuator.attempts if "/compensate/" in k] == [
        f"{handle.id}/compensate/1", f"{handle.id}/compensate/1", f"{handle.id}/compensate/0"
    ]  # fmt: skip
    assert r.ports.actuator.replicas == {"gateway": 4, "checkout": 4}


@pytest.mark.parametrize(
    ("recheck", "words"),
    [
        (deny("freeze_window", "a change freeze began"), "a change freeze began"),
        (allow(2), "the policy now requires 2 approval(s)"),
    ],
    ids=["freeze", "requirement-grew"],
)
async def test_policy_denies_at_the_moment_of_action(temporal: TemporalRuntime, recheck: Any, words: str) -> None:
    gate = FakePolicyGate(safety=[allow(1), recheck])
    async with rig(temporal, gate) as r:
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        result = await handle.result()
    assert result.stage == Stage.DENIED and result.steps_applied == 0
    assert any(words in reason for reason in result.reasons), result.reasons
    assert r.trail() == [*START, "approved", "policy_evaluated", "completed"]
    at_action = r.ports.ledger.records[-2].payload
    assert at_action["details"]["phase"] == "execution"
    assert at_action["allow"] is recheck.allow
    assert r.told() == ["approval_requested", "policy_denied"]
    assert r.ports.inbox.statuses(r.proposal.id)[-1] == "denied"
    assert len(gate.safety_inputs) == 2 and r.ports.actuator.attempts == []


async def test_safety_gate_raising_at_the_moment_of_action_denies(temporal: TemporalRuntime) -> None:
    gate = FakePolicyGate(safety=[allow(1), RuntimeError("policy engine crashed")])
    async with rig(temporal, gate) as r:
        handle = await r.start()
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        result = await handle.result()
    assert result.stage == Stage.DENIED and result.steps_applied == 0
    assert any("could not be read at the moment of action" in reason for reason in result.reasons)
    assert r.trail() == [*START, "approved", "policy_evaluated", "completed"]
    at_action = r.ports.ledger.records[-2].payload
    assert not at_action["allow"] and at_action["decision"]["deny"][0]["code"] == "recheck_failed"
    assert r.told() == ["approval_requested", "policy_denied"]
    assert len(gate.safety_inputs) == 1 + 3  # the first evaluation, then the recheck's three attempts
    assert r.ports.actuator.attempts == []


async def test_safety_gate_raising_at_the_first_evaluation_is_a_recorded_deny(temporal: TemporalRuntime) -> None:
    gate = FakePolicyGate(safety=RuntimeError("policy engine crashed"))
    async with rig(temporal, gate) as r:
        handle = await r.start()
        result = await handle.result()
    # Fail closed, on record: nothing is asked of humans, nothing runs, the deny is in the trail and notified.
    assert result.stage == Stage.DENIED, result
    assert any("could not be asked" in reason for reason in result.reasons), result.reasons
    assert "approval_requested" not in r.trail() and r.ports.actuator.attempts == []
    assert len(gate.safety_inputs) == 3  # POLICY_RETRY's attempts
    assert r.trail() == ["proposed", "policy_evaluated", "completed"]
    assert r.ports.ledger.records[1].payload["decision"]["deny"][0]["code"] == "policy_unavailable"
    assert r.told() == ["policy_denied"]


SETTLING = Timeouts(
    approval_seconds=60, expiry_seconds=60, verification_window_seconds=0, verification_settle_seconds=20
)


async def test_verification_waits_for_the_goals_within_the_settle_period(temporal: TemporalRuntime) -> None:
    """A fix whose effect shows late (a backlog draining) verifies once it shows, not at the first look."""
    async with rig(temporal, twin_follows_estate=False) as r:
        handle = await r.start(SETTLING)
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        await wait_stage(handle, Stage.VERIFYING)
        await eventually(lambda: asyncio.sleep(0, r.ports.twin.reads), lambda n: n >= 3, within=15)
        r.ports.twin.estate = r.ports.actuator  # the estate now shows the fix
        result = await handle.result()
    assert result.stage == Stage.COMPLETED, result.reasons
    assert r.trail() == [*START, "approved", "policy_evaluated", *EXECUTED, "verified", "completed"]


async def test_goals_never_met_roll_back_when_the_settle_period_ends(temporal: TemporalRuntime) -> None:
    async with rig(temporal, twin_follows_estate=False) as r:
        handle = await r.start(SETTLING.model_copy(update={"verification_settle_seconds": 4}))
        await wait_stage(handle, Stage.AWAITING_APPROVAL)
        await (await r.send(handle, "approve", ALICE)).result()
        result = await handle.result()
    assert result.stage == Stage.ROLLED_BACK
    assert r.ports.twin.reads >= 3, "looked again during the settle period"
    undone = ["compensation_started", "compensated"] * 2
    assert r.trail() == [*START, "approved", "policy_evaluated", *EXECUTED, "verification_failed", *undone, "completed"]
