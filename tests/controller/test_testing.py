"""The fakes in controller.testing keep the promises of the ports they stand in for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from agents import AgentState, Proposal, decide, load_desires
from controller.adapters.audit import EventConflictError
from controller.app.worker import Services
from controller.testing import (
    FakeActuator,
    FakeApprovalInbox,
    FakeAuditLedger,
    FakePolicyGate,
    FakePorts,
    FakeTwinSource,
    RecordingNotifier,
    allow,
    deny,
    quorum,
)
from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot, parse_snapshot
from twin.sources import TwinSource, TwinSourceError
from workflows.audit import AuditEventConflict, AuditEventInput, AuditLedger, EventKind
from workflows.policy import ApprovalInput, Approver, PolicyGate, PriorApproval, Requester, SafetyInput
from workflows.ports import (
    Actuator,
    ActuatorError,
    ApprovalInbox,
    InboxEntry,
    InboxStatus,
    Notification,
    NotificationKind,
    Notifier,
)
from workflows.remediation import policy_proposal

NOW = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
AGENT = Requester(kind="agent", id="bdi")


def estate() -> Snapshot:
    return parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": "shop",
            "observed_at": NOW.isoformat(),
            "nodes": [
                {"id": "gateway", "replicas": 4, "capacity_per_replica": 200.0, "min_replicas": 2,
                 "max_replicas": 20, "external_arrival_rate": 1200.0},
                {"id": "checkout", "replicas": 4, "capacity_per_replica": 110.0, "min_replicas": 2,
                 "max_replicas": 12},
            ],
            "edges": [{"source": "gateway", "target": "checkout", "ratio": 0.4}],
        }
    )  # fmt: skip


def proposal() -> Proposal:
    return decide(AgentState(), estate(), load_desires(None), now=NOW).proposals[0]


def event(event_id: str, comment: str = "ok") -> AuditEventInput:
    return AuditEventInput(
        event_id=event_id,
        time=NOW,
        remediation_id="p-1",
        actor="user:alice",
        kind=EventKind.APPROVED,
        payload={"by": "alice", "comment": comment, "rule": "r"},
    )


def test_each_fake_is_an_instance_of_its_port() -> None:
    ports = FakePorts()
    assert isinstance(ports.ledger, AuditLedger)
    assert isinstance(ports.gate, PolicyGate)
    assert isinstance(ports.inbox, ApprovalInbox)
    assert isinstance(ports.actuator, Actuator)
    assert isinstance(ports.notifier, Notifier)
    assert isinstance(ports.twin, TwinSource)
    assert isinstance(ports.services(), Services)


async def test_ledger_is_idempotent_by_event_id_and_detects_conflicts() -> None:
    ledger = FakeAuditLedger()
    first = await ledger.append(event("p-1/001"))
    assert await ledger.append(event("p-1/001")) == first
    await ledger.append(event("p-1/002"))
    with pytest.raises(AuditEventConflict, match=r"'p-1/001'.*seq 0.*differs in: payload") as caught:
        await ledger.append(event("p-1/001", comment="changed"))
    assert isinstance(caught.value, EventConflictError)  # the class the SQL ledger raises
    assert [r.seq for r in await ledger.trail("p-1")] == [0, 1]
    assert ledger.kinds("p-1") == ["approved", "approved"] and await ledger.trail("other") == []


async def test_actuator_applies_once_per_key_and_returns_the_undo() -> None:
    actuator = FakeActuator.of(estate())
    outcome = await actuator.apply("w/step/0", ScaleAction(node="gateway", replicas=8))
    assert outcome.applied and outcome.undo == ScaleAction(node="gateway", replicas=4)
    again = await actuator.apply("w/step/0", ScaleAction(node="gateway", replicas=8))
    assert not again.applied and again.undo == outcome.undo
    assert actuator.replicas["gateway"] == 8
    with pytest.raises(ActuatorError, match="was used for 'scale gateway -> 8'") as reused:
        await actuator.apply("w/step/0", ScaleAction(node="gateway", replicas=9))
    assert reused.value.permanent
    refused: list[tuple[Action, str]] = [
        (ScaleAction(node="nowhere", replicas=1), "no node 'nowhere'"),
        (ScaleAction(node="checkout", replicas=13), r"13 replicas outside \[2, 12\]"),
        (ShiftTrafficAction(source="gateway", ratios={"nowhere": 0.1}), "no edge to nowhere"),
    ]
    for bad, words in refused:
        with pytest.raises(ActuatorError, match=words):
            await actuator.apply(f"bad/{words}", bad)
    shift = await actuator.apply("w/step/1", ShiftTrafficAction(source="gateway", ratios={"checkout": 0.2}))
    assert shift.undo == ShiftTrafficAction(source="gateway", ratios={"checkout": 0.4})
    limit = await actuator.apply("w/step/2", RateLimitAction(node="checkout", max_rps=100.0))
    assert limit.undo == RateLimitAction(node="checkout", max_rps=None)
    restart = await actuator.apply("w/step/3", RestartAction(node="checkout"))
    assert restart.undo is None and actuator.restarts == {"checkout": 1}


async def test_actuator_fails_matching_keys_as_told() -> None:
    actuator = FakeActuator({"gateway": 4})
    actuator.fail("/step/", permanent=False, times=2)
    actuator.fail("/compensate/", permanent=True)
    scale = ScaleAction(node="gateway", replicas=6)
    for _ in range(2):
        with pytest.raises(ActuatorError) as transient:
            await actuator.apply("w/step/0", scale)
        assert not transient.value.permanent
    assert (await actuator.apply("w/step/0", scale)).applied
    with pytest.raises(ActuatorError, match="refused 'w/compensate/0'") as permanent:
        await actuator.apply("w/compensate/0", ScaleAction(node="gateway", replicas=4))
    assert permanent.value.permanent
    assert actuator.attempts == ["w/step/0"] * 3 + ["w/compensate/0"]


def safety_input() -> SafetyInput:
    return SafetyInput(proposal=policy_proposal(proposal()), snapshot_age_seconds=0.0, now=NOW, requester=AGENT)


def approval_input(who: str, prior: tuple[str, ...] = ()) -> ApprovalInput:
    return ApprovalInput(
        approver=Approver(id=who, roles=["sre"], team="edge"),
        requester=AGENT,
        proposal=policy_proposal(proposal()),
        safety=allow(2),
        approvals=[PriorApproval(approver=Approver(id=p, roles=["sre"], team="x"), at=NOW) for p in prior],
        now=NOW,
        expires_at=NOW,
    )


async def test_gate_answers_in_script_order_and_repeats_the_last() -> None:
    gate = FakePolicyGate(safety=[allow(2), deny("freeze", "a freeze began"), RuntimeError("engine down")])
    assert (await gate.evaluate_safety(safety_input())).required_approvals == 2
    assert (await gate.evaluate_safety(safety_input())).deny[0].code == "freeze"
    for _ in range(2):
        with pytest.raises(RuntimeError, match="engine down"):
            await gate.evaluate_safety(safety_input())
    assert len(gate.safety_inputs) == 4
    computed = FakePolicyGate(safety=lambda i: allow(auto_approve=i.proposal.blast_radius < 2))
    assert (await computed.evaluate_safety(safety_input())).auto_approve


async def test_quorum_counts_distinct_approvers_who_are_not_the_requester() -> None:
    rule = quorum(2, groups=["sre"])
    assert rule(approval_input("bdi")).reasons[0].code == "self_approval"
    assert rule(approval_input("alice", prior=("alice",))).reasons[0].code == "duplicate_approver"
    first = rule(approval_input("alice"))
    assert first.counts and not first.quorum_met and first.still_needed == 1 and first.pending
    second = rule(approval_input("bob", prior=("alice",)))
    assert second.counts and second.quorum_met and second.still_needed == 0
    assert quorum(1, groups=["dba"])(approval_input("alice")).reasons[0].code == "not_in_group"


async def test_held_gate_waits_until_released() -> None:
    gate = FakePolicyGate()
    door = gate.hold("approval")
    call = asyncio.create_task(gate.evaluate_approval(approval_input("alice")))
    await asyncio.wait_for(door.arrived.wait(), 1)
    assert door.waiting == 1 and not call.done()
    door.release()
    assert (await asyncio.wait_for(call, 1)).quorum_met
    assert door.waiting == 0


async def test_inbox_keeps_the_latest_entry_and_the_statuses_it_went_through() -> None:
    inbox = FakeApprovalInbox()
    base = InboxEntry(
        proposal_id="p-1", workflow_id="w", twin_id="shop", status=InboxStatus.PENDING, risk="low",
        target="gateway", summary="", created_at=NOW,
    )  # fmt: skip
    for status in (InboxStatus.PENDING, InboxStatus.PENDING, InboxStatus.ESCALATED, InboxStatus.EXPIRED):
        await inbox.upsert(base.model_copy(update={"status": status}))
    assert inbox.entries["p-1"].status == InboxStatus.EXPIRED
    assert inbox.statuses("p-1") == ["pending", "escalated", "expired"]


async def test_twin_returns_its_snapshot_overlays_the_estate_or_raises() -> None:
    snap = estate()
    assert await FakeTwinSource(snap).latest() == snap
    actuator = FakeActuator.of(snap)
    await actuator.apply("k", ScaleAction(node="gateway", replicas=8))
    live = await FakeTwinSource(snap, estate=actuator).latest()
    assert live.node("gateway").replicas == 8 and live.observed_at > snap.observed_at
    with pytest.raises(TwinSourceError, match="stale"):
        await FakeTwinSource(TwinSourceError("stale")).latest()
    with pytest.raises(TwinSourceError, match="no snapshot"):
        await FakeTwinSource().latest()


async def test_notifier_records_in_order() -> None:
    notifier = RecordingNotifier()
    for kind, rid in [(NotificationKind.ESCALATED, "a"), (NotificationKind.EXPIRED, "b")]:
        await notifier.notify(Notification(kind=kind, remediation_id=rid, title="t", text=""))
    assert notifier.kinds() == ["escalated", "expired"] and notifier.kinds("b") == ["expired"]
