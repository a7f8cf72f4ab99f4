"""The HTML audit report over trails built the way RemediationWorkflow writes them.

The proposal comes from the real agent on the `hidden_downstream` scenario, the actions run
on the real simulator and the verdict comes from the real `check_goals`; the payloads are
built exactly as the workflow builds them. Assertions read the report's tables, not its
markup.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest

from agents import AgentState, Proposal, decide, load_desires
from controller.adapters.audit import SqlAuditLedger
from controller.adapters.audit.report import fmt_number, fmt_percent, render_report
from controller.adapters.live_twin import live_scenario
from controller.core.settings import REPO_ROOT
from twin.scenario import load_scenario
from twin.simulator import Simulator
from workflows import check_goals, policy_proposal
from workflows.audit import (
    ApprovalRequestedPayload,
    ApprovedPayload,
    AuditEventInput,
    CompensatedPayload,
    CompensationStartedPayload,
    CompletedPayload,
    EscalatedPayload,
    EventKind,
    ExpiredPayload,
    PlaybookRunStartedPayload,
    PolicyEvaluatedPayload,
    ProposedPayload,
    StepStartedPayload,
    StepSucceededPayload,
    VerificationFailedPayload,
    VerifiedPayload,
)
from workflows.policy import Reason, SafetyDecision, action_node

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
BUNDLE_SHA = "19bc6de5dcd5dbc876931a35b28d66f28dd589ec340b6d3c052df2ec59d38f00"
SIGNATURE = {"alg": "ed25519", "key_id": "approvals-2026", "value": "c2lnbmVkIGJ5IHRoZSBhcHByb3ZhbCBzZXJ2aWNl"}


class _Trail:
    """Appends events the way `RemediationWorkflow._record` numbers and stamps them."""

    def __init__(self, proposal: Proposal, remediation: str | None = None) -> None:
        self.proposal = proposal
        self.rid = remediation or proposal.id
        self.events: list[AuditEventInput] = []
        self.nodes = tuple(sorted({action_node(a) for a in proposal.actions}))

    def record(self, kind: EventKind, payload: Any, *, actor: str = "agent:bdi", targets: tuple[str, ...] = ()) -> None:
        n = len(self.events) + 1
        self.events.append(
            AuditEventInput(
                event_id=f"remediation-{self.rid}/run-1/{n:03d}",
                time=T0 + timedelta(seconds=n),
                remediation_id=self.rid,
                workflow_id=f"remediation-{self.rid}",
                run_id="run-1",
                actor=actor,
                kind=kind,
                target_nodes=targets or self.nodes,
                payload=payload,
            )
        )


def _proposal() -> tuple[Proposal, Simulator]:
    simulator = Simulator(live_scenario(load_scenario(REPO_ROOT / "twin" / "scenarios" / "hidden_downstream.yaml"), T0))
    snapshot = simulator.snapshot()
    decision = decide(AgentState(), snapshot, load_desires(None), now=snapshot.observed_at)
    return decision.proposals[0], simulator


def _propose(trail: _Trail, decision: SafetyDecision) -> None:
    p = trail.proposal
    trail.record(
        EventKind.PROPOSED,
        ProposedPayload(
            beliefs={"nodes": [b.model_dump(mode="json") for b in p.beliefs_used]},
            plan=p.plan.model_dump(mode="json"),
            alternatives=[a.model_dump(mode="json") for a in p.alternatives],
            rationale=p.rationale,
            predicted={k: v.model_dump(mode="json") for k, v in p.plan.predicted.items()},
            intention={"intent": p.intent, "findings": [f.model_dump(mode="json") for f in p.findings]},
        ),
    )
    trail.record(
        EventKind.POLICY_EVALUATED,
        PolicyEvaluatedPayload(
            input_digest="ab" * 32,
            allow=decision.allow,
            decision=decision.model_dump(mode="json"),
            bundle_revision=decision.bundle_revision,
            bundle_sha256=decision.bundle_sha256,
            engine=decision.engine,
        ),
        actor="system",
    )


def _allowed() -> SafetyDecision:
    return SafetyDecision(
        allow=True,
        deny=[],
        risk="high",
        required_approvals=2,
        approver_groups=["sre"],
        auto_approve=False,
        bundle_revision="2026.11.21-2",
        bundle_sha256=BUNDLE_SHA,
        engine="regorus",
    )


def succeeded_trail(*, verified: bool = True) -> list[AuditEventInput]:
    """Proposed, allowed, approved by two SREs (one signed), two steps, verified (or rolled back), completed."""
    p, simulator = _proposal()
    trail = _Trail(p)
    decision = _allowed()
    _propose(trail, decision)
    trail.record(
        EventKind.APPROVAL_REQUESTED,
        ApprovalRequestedPayload(
            approval_id=p.id,
            required_approvals=2,
            expires_at=T0 + timedelta(hours=1),
            summary=p.rationale,
            details={"risk": "high", "approver_groups": ["sre"]},
        ),
        actor="system",
    )
    rule = "twinops.approval.decision@2026.11.21-2"
    trail.record(
        EventKind.APPROVED,
        ApprovedPayload(
            by="dana", comment="capacity math checks out", rule=rule, details={"quorum_met": False, "still_needed": 1}
        ),
        actor="user:dana",
    )
    trail.record(
        EventKind.APPROVED,
        ApprovedPayload(
            by="sam", comment="go", rule=rule, details={"quorum_met": True, "still_needed": 0, "signature": SIGNATURE}
        ),
        actor="user:sam",
    )
    undos = []
    for index, action in enumerate(p.actions):
        key = f"remediation-{p.id}/step/{index}"
        trail.record(
            EventKind.STEP_STARTED,
            StepStartedPayload(step_id=f"step-{index}", action=action.model_dump(mode="json"), idempotency_key=key),
            targets=(action_node(action),),
        )
        undo = simulator.apply(action, key)
        undos.append(undo)
        trail.record(
            EventKind.STEP_SUCCEEDED,
            StepSucceededPayload(
                step_id=f"step-{index}",
                result={
                    "applied": True,
                    "detail": f"scaled {action_node(action)}",
                    "undo": undo.model_dump(mode="json"),
                },
            ),
            targets=(action_node(action),),
        )
    simulator.run(30)
    verdict = check_goals(p, simulator.snapshot(), 0.05)
    assert verdict.met, verdict.findings
    if verified:
        trail.record(
            EventKind.VERIFIED,
            VerifiedPayload(goal={"predicted": policy_proposal(p).predicted}, observed=verdict.nodes),
            actor="system",
        )
        trail.record(EventKind.COMPLETED, CompletedPayload(outcome="succeeded", summary="verified"), actor="system")
        return trail.events
    reason = "node 'checkout': p95 823 ms above SLO 300 ms"
    trail.record(
        EventKind.VERIFICATION_FAILED, VerificationFailedPayload(reason=reason, observed=verdict.nodes), actor="system"
    )
    for index in reversed(range(len(undos))):
        node = action_node(undos[index])
        trail.record(
            EventKind.COMPENSATION_STARTED,
            CompensationStartedPayload(step_id=f"step-{index}", action=undos[index].model_dump(mode="json")),
            targets=(node,),
        )
        trail.record(
            EventKind.COMPENSATED,
            CompensatedPayload(step_id=f"step-{index}", result={"applied": True, "detail": f"restored {node}"}),
            targets=(node,),
        )
    trail.record(EventKind.COMPLETED, CompletedPayload(outcome="rolled_back", summary=reason), actor="system")
    return trail.events


def denied_trail(remediation: str | None = None) -> list[AuditEventInput]:
    """Proposed and denied by policy, as the workflow ends it."""
    p, _ = _proposal()
    trail = _Trail(p, remediation)
    reasons = [
        Reason(
            code="change_freeze",
            msg='change freeze ["black-friday"] is in force; only a human may propose changes now',
            details={"windows": ["black-friday"], "requester_kind": "agent"},
        ),
        Reason(
            code="stale_twin",
            msg="twin snapshot is 312.4567891s old; the limit is 300s",
            details={"age_seconds": 312.4567891, "max_age_seconds": 300},
        ),
    ]
    denied = _allowed().model_copy(update={"allow": False, "deny": reasons, "required_approvals": 0})
    _propose(trail, denied)
    summary = "denied by policy: " + "; ".join(r.msg for r in reasons)
    trail.record(EventKind.COMPLETED, CompletedPayload(outcome="denied", summary=summary), actor="system")
    return trail.events


# ---- reading the page ---------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every table's rows as lists of cell texts, keyed by the heading above it; <details> skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._heading: str | None = None
        self._last_heading = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details":
            self._hidden += 1
        elif tag in ("h2", "h3"):
            self._heading = ""
        elif tag == "table":
            self.tables.append((self._last_heading, []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("br", "li") and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self._hidden -= 1
        elif tag in ("h2", "h3") and self._heading is not None:
            self._last_heading, self._heading = " ".join(self._heading.split()), None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str, heading: str) -> list[list[str]]:
    """The rows of every table under headings starting with `heading`, concatenated."""
    parser = _Tables()
    parser.feed(html)
    found = [rows for title, rows in parser.tables if title.startswith(heading)]
    assert found, f"no table under {heading!r}: {[t for t, _ in parser.tables]}"
    return [row for rows in found for row in rows]


def visible(html: str) -> str:
    """What a reader sees before opening anything: collapsed raw events and proofs and the signed note removed."""
    html = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    return re.sub(r'<pre class="checkpoint">.*?</pre>', "", html, flags=re.S)


def text(html: str) -> str:
    """The visible text, tags stripped and entities decoded."""
    return unescape(re.sub(r"<[^>]+>", " ", visible(html)))


def report(ledger: SqlAuditLedger, events: list[AuditEventInput]) -> str:
    for event in events:
        ledger.append_sync(event)
    return render_report(ledger, events[0].remediation_id)


# ---- the tests ----------------------------------------------------------------------------


def test_findings_and_beliefs_come_from_the_proposed_event(ledger: SqlAuditLedger) -> None:
    html = report(ledger, succeeded_trail())
    findings = tables(html, "1. Finding and evidence")
    checkout = next(r for r in findings if r[0] == "checkout")
    assert checkout[1:5] == ["saturated hidden", "109%", "80%", "now"]
    assert "checkout is saturated: demand 480 rps on capacity 440" in checkout[5]
    assert "160.0 rps are held back by a saturated upstream node" in checkout[6]
    assert {r[0] for r in findings[1:]} == {"gateway", "checkout"}
    beliefs = {r[0]: r for r in tables(html, "What the agent believed")[1:]}
    assert beliefs["gateway"][2:6] == ["4 (2–20)", "800 rps", "1200 rps", "150%"]
    assert "upstream saturated" in beliefs["checkout"][-1]


def test_actions_show_before_predicted_and_observed_after(ledger: SqlAuditLedger) -> None:
    html = report(ledger, succeeded_trail())
    rows = tables(html, "2. Plan and alternatives")
    rows = rows[next(i for i, r in enumerate(rows) if r[:1] == ["Step"]) - 1 :]
    header = rows[1]
    assert header[:3] == ["Step", "Action", "Node"] and header[3:6] == ["before", "predicted", "observed after"]
    actions = {r[2]: r for r in rows[2:] if r[0].startswith("step-")}
    #                    replicas: before, predicted, after | utilization: before, predicted, after | target
    assert actions["gateway"][3:10] == ["4", "8", "8", "150%", "75%", "75%", "80%"]
    assert actions["checkout"][3:10] == ["4", "6", "6", "109%", "72.7%", "72.7%", "80%"]
    assert actions["checkout"][1] == "scale checkout → 6" and actions["checkout"][-1] == "scale checkout → 4"
    alternatives = tables(html, "Alternatives considered")
    assert alternatives[1][:3] == ["scale_with_headroom", "scale gateway 4 -> 9; scale checkout 4 -> 7", "8 per hour"]


def test_policy_facts_and_deny_reasons(ledger: SqlAuditLedger) -> None:
    html = report(ledger, denied_trail())
    policy = {r[0]: r[1] for r in tables(html, "3. Policy decision") if len(r) == 2}
    assert policy["decision"] == "deny" and policy["engine"] == "regorus"
    assert policy["bundle revision"] == "2026.11.21-2" and policy["bundle sha256"] == BUNDLE_SHA
    reasons = tables(html, "Reasons")
    assert reasons[0] == ["Kind", "Code", "Reason", "Details"]
    assert reasons[1][:3] == [
        "deny",
        "change_freeze",
        'change freeze ["black-friday"] is in force; only a human may propose changes now',
    ]
    assert reasons[1][3] == "requester_kind: agent windows: black-friday"
    # The policy's words, with its long decimals rounded like every number on the page.
    assert reasons[2][1:] == [
        "stale_twin",
        "twin snapshot is 312s old; the limit is 300s",
        "age_seconds: 312 max_age_seconds: 300",
    ]
    assert 'badge bad">denied</span>' in visible(html).split("7. Outcome")[1]


def test_approvers_with_rule_time_and_signature(ledger: SqlAuditLedger) -> None:
    html = report(ledger, succeeded_trail())
    rows = tables(html, "4. Approvals")
    request = {r[0]: r[1] for r in rows if len(r) == 2}
    assert request["approvals required"] == "2" and request["expires"] == "2026-11-21 23:00:00 UTC"
    decisions = [r for r in rows if len(r) > 2]
    assert decisions[0] == ["When", "Decision", "Who", "Rule", "Comment", "Quorum", "Signature"]
    dana, sam = decisions[1], decisions[2]
    assert dana[:6] == [
        "2026-11-21 22:00:04 UTC",
        "approved",
        "dana user:dana",
        "twinops.approval.decision@2026.11.21-2",
        "capacity math checks out",
        "1 more needed",
    ]
    assert dana[6] == "unsigned"
    assert sam[5] == "quorum met" and "key_id: approvals-2026" in sam[6] and SIGNATURE["value"] in sam[6]
    # The summary approvers saw is shown whole, as text, not in a scrolling box.
    assert "Hidden behind it: checkout" in visible(html).split("Summary shown to approvers")[1].split("</div>")[0]
    assert 'class="summary"' in html and "white-space: pre-wrap" in html


def test_steps_compensations_and_outcome_of_a_rollback(ledger: SqlAuditLedger) -> None:
    html = report(ledger, succeeded_trail(verified=False))
    steps = tables(html, "5. Steps and compensations")[1:]
    assert [(r[0], r[1], r[4]) for r in steps] == [
        ("step-0", "scale gateway → 8", "succeeded"),
        ("step-1", "scale checkout → 6", "succeeded"),
        ("step-1 compensation", "scale checkout → 4", "compensated"),
        ("step-0 compensation", "scale gateway → 4", "compensated"),
    ]
    assert "undo registered: scale gateway → 4" in steps[0][5]
    verification = tables(html, "6. Verification")
    assert ["checkout", "6", "72.7%", "80%", "—"] in verification
    assert "node 'checkout': p95 823 ms above SLO 300 ms" in text(html).split("6. Verification")[1]
    assert 'badge bad">rolled_back' in html


def test_no_raw_json_or_long_floats_outside_collapsed_details(ledger: SqlAuditLedger) -> None:
    html = report(ledger, succeeded_trail())
    for page in (html, report(ledger, denied_trail("p-denied"))):
        shown = visible(page)
        assert not re.findall(r"\d\.\d{5,}", shown), re.findall(r".{40}\d\.\d{5,}.{20}", shown)
    shown = visible(html)
    assert '"utilization_before"' not in shown and "&#34;" not in shown  # no JSON in view
    assert "overflow-x" not in html and "max-height" not in html and "@media print" in html
    assert html.count('<details class="raw">') == 11  # one per event, collapsed
    assert "0.7272727272727273" in html  # exact values remain in the raw events and proofs


def test_escalation_and_expiry_are_approval_rows(ledger: SqlAuditLedger) -> None:
    p, _ = _proposal()
    trail = _Trail(p, "p-expired")
    _propose(trail, _allowed())
    trail.record(
        EventKind.APPROVAL_REQUESTED, ApprovalRequestedPayload(approval_id=p.id, required_approvals=2), actor="system"
    )
    trail.record(EventKind.ESCALATED, EscalatedPayload(to="on-call", reason="no quorum after 3600s"), actor="system")
    trail.record(EventKind.EXPIRED, ExpiredPayload(approval_id=p.id, waited_seconds=7200.0), actor="system")
    trail.record(
        EventKind.COMPLETED, CompletedPayload(outcome="expired", summary="expired without quorum"), actor="system"
    )
    html = report(ledger, trail.events)
    decisions = [r for r in tables(html, "4. Approvals") if len(r) > 2]
    assert [r[1:5] for r in decisions[1:]] == [
        ["escalated", "system", "—", "escalated to on-call: no quorum after 3600s"],
        ["expired", "system", "—", "nobody decided in 2 h"],
    ]
    assert "Nothing ran." in html and "Not verified." in html


def test_kinds_without_a_table_are_shown_generically(ledger: SqlAuditLedger) -> None:
    run = AuditEventInput(
        event_id="run-7/001",
        time=T0,
        remediation_id="run-7",
        actor="playbook:nightly",
        kind=EventKind.PLAYBOOK_RUN_STARTED,
        payload=PlaybookRunStartedPayload(
            playbook="nightly", parameters={"target_utilization": 0.7272727272727273, "nodes": ["a", "b"]}
        ),
    )
    html = report(ledger, [run])
    rows = tables(html, "playbook_run_started")
    assert ["parameters.target_utilization", "72.7%"] in rows and ["parameters.nodes", "a, b"] in rows
    assert ["trigger", "schedule"] in rows
    assert "No proposal in this trail" in html and "In progress" in html


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.7272727272727273, "0.727"),
        (822.6801911878537, "823"),
        (16.45578726653894, "16.5"),
        (1200.0, "1200"),
        (4, "4"),
        (0.0001234, "0.00012"),
        (True, "yes"),
        (None, "—"),
        ("x", "x"),
    ],
)
def test_numbers_are_rounded_for_reading(value: object, shown: str) -> None:
    assert fmt_number(value) == shown


def test_percentages() -> None:
    assert [fmt_percent(v) for v in (0.7272727272727273, 1.5, 0.8, 0.25, None)] == ["72.7%", "150%", "80%", "25%", "—"]
