"""Playbook run reports for the store, renderer, CLI and web tests: real `PlaybookRunReport` objects.

`full_report` has one node of every outcome, a node whose name is hostile markup, figures with
gaps (None), and a skipped node; `small_report` is a one-node run for ordering tests;
`ran_and_waiting_report` is the run the docs' screenshots show (one node ran, one waits for approval).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agents.playbook import PreconditionResult
from workflows.contracts import Stage
from workflows.playbook_contracts import NodeFigures, NodeReport, PlaybookRunReport, RunSkipped, StepReport

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="alert(1)">&<script>alert("node")</script>'
"""A node name that is markup: every renderer must show it as text."""


def figures(replicas: int, demand: float | None, utilization: float | None, p95: float | None) -> NodeFigures:
    """One node's figures at T0 (None where the twin had no trusted figure)."""
    return NodeFigures(observed_at=T0, replicas=replicas, demand_rps=demand, utilization=utilization, p95_ms=p95)


def _scale(node: str, to: int) -> list[StepReport]:
    return [StepReport(name="scale-up", action=f"scale {node} -> {to}", status="planned")]


def full_report(run_id: str = "playbook-run-nightly-20261121T020000Z", **changes: Any) -> PlaybookRunReport:
    """A run of `nightly` v3 with one node of every outcome."""
    nodes = [
        NodeReport(
            node="checkout",
            outcome="ran",
            summary="scaled checkout 4 -> 7; verified at 61% utilization",
            steps=_scale("checkout", 7),
            proposal_id="p-ran0001",
            workflow_id="remediation-p-ran0001",
            stage=Stage.COMPLETED,
            risk="low",
            before=figures(4, 880.0, 0.92, 41.5),
            after=figures(7, 875.5, 0.61, 18.25),
        ),
        NodeReport(
            node="payments",
            outcome="waiting_approval",
            summary="scale payments 2 -> 4 waits for an SRE",
            steps=_scale("payments", 4),
            proposal_id="p-wait0002",
            workflow_id="remediation-p-wait0002",
            stage=Stage.AWAITING_APPROVAL,
            risk="high",
            before=figures(2, None, None, None),
        ),
        NodeReport(
            node="search",
            outcome="denied",
            summary="the safety policy denied scaling search",
            steps=_scale("search", 12),
            proposal_id="p-deny0003",
            stage=Stage.DENIED,
            reasons=["change freeze until 06:00", "budget: 12 replicas exceed the cap of 10"],
            deny_codes=["freeze", "budget_cap"],
        ),
        NodeReport(
            node="inventory",
            outcome="rolled_back",
            summary="verification failed; scaled back to 3",
            proposal_id="p-back0004",
            stage=Stage.ROLLED_BACK,
            reasons=["p95 latency rose to 250 ms"],
            before=figures(3, 400.0, 0.8, 30.0),
            after=figures(3, 410.0, 0.82, None),
        ),
        NodeReport(
            node="ledger",
            outcome="failed",
            summary="the scale step failed and its compensation too",
            proposal_id="p-fail0005",
            stage=Stage.FAILED,
            reasons=["actuator refused: quota exceeded"],
            compensations_failed=1,
        ),
        NodeReport(
            node="cart",
            outcome="not_met",
            summary="utilization below the threshold",
            preconditions=[
                PreconditionResult(source="utilization > 0.8", met=False, value=0.42, detail="0.42 is not > 0.8"),
                PreconditionResult(source="demand_rps > 100", met=True, value=350.0),
            ],
        ),
        NodeReport(
            node="frontend",
            outcome="nothing_to_do",
            summary="already at 6 replicas",
            steps=[StepReport(name="scale-up", action="", status="skipped", reason="already at the target")],
        ),
        NodeReport(node="search-index", outcome="not_started", summary="the run stopped before this node"),
        NodeReport(
            node=HOSTILE,
            outcome="rejected",
            summary="rejected by alice: <b>not tonight</b>",
            proposal_id="p-<rej>0006",
            reasons=["<b>not tonight</b>"],
        ),
        NodeReport(node="mail", outcome="expired", summary="nobody approved in time", proposal_id="p-exp0007"),
        NodeReport(node="auth", outcome="cancelled", summary="cancelled by bob", proposal_id="p-can0008"),
        NodeReport(
            node="reco",
            outcome="already_open",
            summary="a remediation of the same proposal is open",
            proposal_id="p-open0009",
        ),
    ]
    fields: dict[str, Any] = {
        "run_id": run_id,
        "playbook": "nightly",
        "version": 3,
        "owner": "team-edge",
        "description": "Scale the hot services for the morning peak.",
        "trigger": "manual",
        "requested_by": "alice",
        "twin_id": "shop",
        "started_at": T0,
        "ended_at": T0 + timedelta(minutes=12),
        "observed_at": T0 - timedelta(seconds=30),
        "status": "partial",
        "stopped": "max duration 10m reached",
        "history": "14 days of stored demand history",
        "nodes": nodes,
        "skipped": [RunSkipped(node="legacy", reason="stale beliefs (observed 20 min ago)")],
    }
    fields.update(changes)
    return PlaybookRunReport.model_validate(fields)


def small_report(run_id: str, playbook: str = "nightly", ended_minutes: int = 0, **changes: Any) -> PlaybookRunReport:
    """A one-node run that ended `ended_minutes` after T0."""
    fields: dict[str, Any] = {
        "run_id": run_id,
        "playbook": playbook,
        "version": 1,
        "owner": "team-edge",
        "trigger": "schedule",
        "started_at": T0 + timedelta(minutes=ended_minutes - 1),
        "ended_at": T0 + timedelta(minutes=ended_minutes),
        "status": "succeeded",
        "nodes": [
            NodeReport(
                node="checkout",
                outcome="ran",
                summary="scaled checkout 4 -> 5",
                proposal_id=f"p-{run_id}",
                before=figures(4, 500.0, 0.85, 20.0),
                after=figures(5, 500.0, 0.68, 15.0),
            )
        ],
    }
    fields.update(changes)
    return PlaybookRunReport.model_validate(fields)


def ran_and_waiting_report(**changes: Any) -> PlaybookRunReport:
    """A nightly trim of shop by its schedule: catalog auto-approved and scaled 9 -> 8, web parked for 2 approvals.

    The texts are the ones the workflow writes (workflows/playbook_run.py, playbook_activities.py).
    """
    started = T0 + timedelta(minutes=30)
    fields: dict[str, Any] = {
        "run_id": "playbook-run-trim-nightly-20261121T023000Z",
        "playbook": "trim-nightly",
        "version": 3,
        "owner": "sre",
        "description": "take one replica from each target while demand is low",
        "trigger": "schedule",
        "twin_id": "shop",
        "started_at": started,
        "ended_at": started + timedelta(seconds=41),
        "observed_at": started + timedelta(seconds=1),
        "status": "waiting_approval",
        "history": "demand history of 'shop' (288 buckets)",
        "preapproval_note": "no pre-approval covers this run of trim-nightly",
        "nodes": [
            NodeReport(
                node="catalog",
                outcome="ran",
                summary="ran and verified: scale catalog -> 8",
                preconditions=[
                    PreconditionResult(
                        source="demand_utilization < 0.3 for 2h",
                        met=True,
                        value=True,
                        hold_seconds=7200,
                        detail="held in all 25 buckets of the last 2 h",
                    )
                ],
                steps=[StepReport(name="trim", action="scale catalog -> 8", status="planned")],
                proposal_id="p-18b4763864f124530a61",
                workflow_id="remediation-p-18b4763864f124530a61",
                stage=Stage.COMPLETED,
                risk="low",
                before=figures(9, 194.0, 0.154, 21.5),
                after=figures(8, 188.0, 0.165, 21.5),
            ),
            NodeReport(
                node="web",
                outcome="waiting_approval",
                summary="waits in the SRE queue for 2 approval(s) from sre",
                steps=[StepReport(name="trim", action="scale web -> 6", status="planned")],
                proposal_id="p-3ffd575bf1ef9fea389d",
                workflow_id="remediation-p-3ffd575bf1ef9fea389d",
                stage=Stage.AWAITING_APPROVAL,
                risk="high",
                before=figures(7, 410.0, 0.21, 35.0),
            ),
        ],
    }
    fields.update(changes)
    return PlaybookRunReport.model_validate(fields)
