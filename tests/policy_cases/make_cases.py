"""Write the engine-parity cases: one JSON file per case, input plus the expected decision.

The expected decisions are written here by hand from the rules in policies/, not
copied from an engine's output; `python -m tests.policy_cases.make_cases` rewrites
the files. Each case: {"name", "package", "description", "input", "expected"}, where
`expected` lists deny/reason/pending *codes* (sorted), since messages may format
numbers differently between engines.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

NOW = "2026-11-21T22:00:00Z"


def node(
    id: str,
    *,
    kind: str = "service",
    tier: str = "standard",
    team: str = "payments",
    replicas: int = 4,
    min_replicas: int = 1,
    max_replicas: int = 40,
) -> dict[str, Any]:
    return {
        "id": id,
        "kind": kind,
        "tier": tier,
        "team": team,
        "tags": {},
        "replicas": replicas,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
    }


def scale(n: str, r: int) -> dict[str, Any]:
    return {"type": "scale", "node": n, "replicas": r}


def safety(
    actions: list[dict[str, Any]] | None = None, nodes: list[dict[str, Any]] | None = None, **over: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "proposal": {
            "id": "p-1",
            "plan_hash": "plan-a",
            "blast_radius": 0.1,
            "predicted": {"checkout": {"utilization": 0.6}},
            "actions": actions if actions is not None else [scale("checkout", 8)],
            "nodes": nodes if nodes is not None else [node("checkout")],
        },
        "snapshot_age_seconds": 5.0,
        "history": [],
        "now": NOW,
        "requester": {"kind": "agent", "id": "agent-1"},
    }
    for key, value in over.items():
        if key in doc["proposal"] or key == "fleet_replicas":
            doc["proposal"][key] = value
        else:
            doc[key] = value
    return doc


def hist(n: str, at: str, plan: str = "plan-x", outcome: str = "executed") -> dict[str, Any]:
    return {"at": at, "node": n, "action_type": "scale", "plan_hash": plan, "outcome": outcome}


def s_expect(
    allow: bool, risk: str, approvals: int, auto: bool, groups: list[str], deny: list[str] | None = None
) -> dict[str, Any]:
    return {
        "allow": allow,
        "deny": sorted(deny or []),
        "risk": risk,
        "required_approvals": approvals,
        "auto_approve": auto,
        "approver_groups": groups,
    }


SAFETY_DECISION = {
    "allow": True,
    "deny": [],
    "risk": "low",
    "required_approvals": 1,
    "approver_groups": ["sre"],
    "auto_approve": False,
}


def person(id: str, roles: list[str] | None = None, team: str = "payments") -> dict[str, Any]:
    return {"id": id, "roles": roles if roles is not None else ["sre"], "team": team}


def approval(
    approver: dict[str, Any],
    *,
    risk: str = "low",
    required: int = 1,
    approvals: list[dict[str, Any]] | None = None,
    **over: Any,
) -> dict[str, Any]:
    base = safety()
    doc: dict[str, Any] = {
        "approver": approver,
        "requester": {"kind": "agent", "id": "agent-1"},
        "proposal": base["proposal"],
        "safety": {**SAFETY_DECISION, "risk": risk, "required_approvals": required},
        "approvals": approvals or [],
        "now": "2026-11-21T22:30:00Z",
        "expires_at": "2026-11-21T23:00:00Z",
    }
    doc.update(copy.deepcopy(over))
    return doc


def prior(p: dict[str, Any], at: str = "2026-11-21T22:10:00Z") -> dict[str, Any]:
    return {"approver": p, "at": at}


def a_expect(
    counts: bool,
    quorum: bool,
    counted: int,
    needed: int,
    reasons: list[str] | None = None,
    pending: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "counts": counts,
        "quorum_met": quorum,
        "approvals_counted": counted,
        "still_needed": needed,
        "reasons": sorted(reasons or []),
        "pending": sorted(pending or []),
    }


STALE = {"code": "stale_twin", "msg": "old", "details": {}}
ALICE, BOB = person("alice"), person("bob", team="edge")
LEE, LIA = person("lee", ["sre", "sre-leads"], team="platform"), person("lia", ["sre", "sre-leads"])
UNOWNED_PROPOSAL = {**safety()["proposal"], "nodes": [node("checkout", team="")]}
IN_FREEZE, FREEZE_EXPIRY = "2025-12-28T09:00:00Z", "2025-12-28T10:00:00Z"


def cases() -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    big = 20
    restart_db = [{"type": "restart", "node": "orders-db"}]
    return [
        # --- safety ---------------------------------------------------------
        (
            "safety_small_scale_auto",
            "safety",
            "agent doubles a small service: low risk, auto-approved",
            safety(),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_stale_twin",
            "safety",
            "snapshot older than 120 s",
            safety(snapshot_age_seconds=300.0),
            s_expect(False, "low", 1, False, ["sre"], ["stale_twin"]),
        ),
        (
            "safety_twin_at_limit",
            "safety",
            "snapshot exactly 120 s old is still fresh",
            safety(snapshot_age_seconds=120.0),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_unknown_node",
            "safety",
            "action on a node not described",
            safety([scale("ghost", 3)]),
            s_expect(False, "low", 1, False, ["sre"], ["unknown_node"]),
        ),
        (
            "safety_external_node",
            "safety",
            "rate limit on an external node",
            safety(
                [{"type": "rate_limit", "node": "psp", "max_rps": 50.0}],
                [node("psp", kind="external", replicas=1, max_replicas=1)],
            ),
            s_expect(False, "medium", 1, False, ["network", "sre"], ["unactionable_kind"]),
        ),
        (
            "safety_below_min",
            "safety",
            "scale below min_replicas",
            safety([scale("checkout", 1)], [node("checkout", min_replicas=2)]),
            s_expect(False, "low", 1, False, ["sre"], ["below_min_replicas"]),
        ),
        (
            "safety_above_node_max",
            "safety",
            "scale above the node's max_replicas",
            safety([scale("checkout", 12)], [node("checkout", replicas=10, max_replicas=11)]),
            s_expect(False, "low", 1, False, ["sre"], ["above_node_max_replicas"]),
        ),
        (
            "safety_above_policy_max",
            "safety",
            "scale above the 50-replica policy cap",
            safety([scale("checkout", 55)], [node("checkout", replicas=50, max_replicas=100)]),
            s_expect(False, "low", 1, False, ["sre"], ["above_policy_max_replicas"]),
        ),
        (
            "safety_step_too_large",
            "safety",
            "20 -> 45 is more than x2 and more than +10",
            safety([scale("checkout", 45)], [node("checkout", replicas=big, max_replicas=50)]),
            s_expect(False, "low", 1, False, ["sre"], ["scale_step_too_large"]),
        ),
        (
            "safety_step_plus_ten",
            "safety",
            "1 -> 11 is +10: allowed",
            safety([scale("checkout", 11)], [node("checkout", replicas=1)]),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_scale_down_too_far",
            "safety",
            "40 -> 12 is more than halving and more than -10",
            safety([scale("checkout", 12)], [node("checkout", replicas=40, max_replicas=50)]),
            s_expect(False, "low", 1, False, ["sre"], ["scale_step_too_large"]),
        ),
        (
            "safety_budget_exceeded",
            "safety",
            "fleet of 398 + 4 > 400",
            safety(fleet_replicas=398),
            s_expect(False, "low", 1, False, ["sre"], ["replica_budget_exceeded"]),
        ),
        (
            "safety_budget_exact",
            "safety",
            "fleet of 396 + 4 = 400",
            safety(fleet_replicas=396),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_freeze_start_inclusive",
            "safety",
            "agent proposes at the first instant of the example year-end freeze",
            safety(now="2025-12-24T00:00:00Z"),
            s_expect(False, "low", 2, False, ["sre", "sre-leads"], ["change_freeze"]),
        ),
        (
            "safety_freeze_end_exclusive",
            "safety",
            "agent proposes at the end instant of the freeze: allowed",
            safety(now="2026-01-02T00:00:00Z"),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_freeze_human",
            "safety",
            "a human may propose during a freeze, with two approvals; the window's sre-leads are asked too",
            safety(now="2025-12-28T09:00:00Z", requester={"kind": "human", "id": "alice"}),
            s_expect(True, "low", 2, False, ["sre", "sre-leads"]),
        ),
        (
            "safety_rate_limited",
            "safety",
            "three actions on checkout in the last 30 minutes",
            safety(
                history=[
                    hist("checkout", "2026-11-21T21:45:00Z"),
                    hist("checkout", "2026-11-21T21:40:00Z"),
                    hist("checkout", "2026-11-21T21:35:00Z", outcome="verified"),
                ]
            ),
            s_expect(False, "low", 1, False, ["sre"], ["rate_limited"]),
        ),
        (
            "safety_rate_window_edge",
            "safety",
            "the third action is exactly 30 minutes old: not counted",
            safety(
                history=[
                    hist("checkout", "2026-11-21T21:45:00Z"),
                    hist("checkout", "2026-11-21T21:40:00Z"),
                    hist("checkout", "2026-11-21T21:30:00Z"),
                ]
            ),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_loop_breaker",
            "safety",
            "the same plan failed verification twice today",
            safety(
                history=[
                    hist("checkout", "2026-11-21T08:00:00Z", "plan-a", "verification_failed"),
                    hist("checkout", "2026-11-21T14:00:00Z", "plan-a", "verification_failed"),
                ]
            ),
            s_expect(False, "low", 1, False, ["sre"], ["loop_breaker"]),
        ),
        (
            "safety_loop_breaker_old",
            "safety",
            "one failure today, one 25 hours ago: retry allowed",
            safety(
                history=[
                    hist("checkout", "2026-11-20T21:00:00Z", "plan-a", "verification_failed"),
                    hist("checkout", "2026-11-21T14:00:00Z", "plan-a", "verification_failed"),
                ]
            ),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_restart_service",
            "safety",
            "restart is non-compensable: high risk, two approvals",
            safety([{"type": "restart", "node": "checkout"}]),
            s_expect(True, "high", 2, False, ["sre"]),
        ),
        (
            "safety_restart_database",
            "safety",
            "restarting a database: high risk, two approvals",
            safety(restart_db, [node("orders-db", kind="database", team="data", replicas=3)]),
            s_expect(True, "high", 2, False, ["sre"]),
        ),
        (
            "safety_critical_tier",
            "safety",
            "critical tier is never auto-approved",
            safety(nodes=[node("checkout", tier="critical")]),
            s_expect(True, "low", 1, False, ["sre"]),
        ),
        (
            "safety_blast_medium",
            "safety",
            "blast radius 0.3 is medium risk",
            safety(blast_radius=0.3),
            s_expect(True, "medium", 1, False, ["sre"]),
        ),
        (
            "safety_blast_high",
            "safety",
            "blast radius 0.7 is high risk",
            safety(blast_radius=0.7),
            s_expect(True, "high", 2, False, ["sre"]),
        ),
        (
            "safety_shift_traffic",
            "safety",
            "shifting traffic is medium risk, sre or network approve",
            safety([{"type": "shift_traffic", "source": "checkout", "ratios": {"cart": 0.5}}]),
            s_expect(True, "medium", 1, False, ["network", "sre"]),
        ),
        (
            "safety_human_requester",
            "safety",
            "human proposals are never auto-approved",
            safety(requester={"kind": "human", "id": "alice"}),
            s_expect(True, "low", 1, False, ["sre"]),
        ),
        (
            "safety_playbook_requester",
            "safety",
            "overnight playbook, low risk: auto-approved",
            safety(requester={"kind": "playbook", "id": "nightly-rightsizing"}),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_several_denials",
            "safety",
            "stale twin and step too large at once",
            safety([scale("checkout", 30)], [node("checkout", replicas=4)], snapshot_age_seconds=600.0),
            s_expect(False, "low", 1, False, ["sre"], ["scale_step_too_large", "stale_twin"]),
        ),
        (
            "safety_two_nodes",
            "safety",
            "two nodes scaled in one plan",
            safety([scale("checkout", 8), scale("cart", 6)], [node("checkout"), node("cart", team="web", replicas=3)]),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        # --- small scale-downs (scale_down_low_risk) ---------------------------
        (
            "safety_scale_down_wide_auto",
            "safety",
            "search (28% of the traffic) 4 -> 3: a small scale-down of a standard node is low risk, auto-approved",
            safety([scale("search", 3)], [node("search")], blast_radius=0.28),
            s_expect(True, "low", 0, True, ["sre"]),
        ),
        (
            "safety_scale_down_critical_tier",
            "safety",
            "the same step on a critical node: its blast radius counts (medium), a human approves",
            safety([scale("search", 3)], [node("search", tier="critical")], blast_radius=0.28),
            s_expect(True, "medium", 1, False, ["sre"]),
        ),
        (
            "safety_scale_down_database",
            "safety",
            "the same step on a database: low risk, but databases are never auto-approved",
            safety([scale("orders-db", 3)], [node("orders-db", kind="database", team="data")], blast_radius=0.28),
            s_expect(True, "low", 1, False, ["sre"]),
        ),
        (
            "safety_scale_down_not_small",
            "safety",
            "4 -> 1 removes more than a quarter and more than 2: not small, medium by its blast radius",
            safety([scale("search", 1)], [node("search")], blast_radius=0.28),
            s_expect(True, "medium", 1, False, ["sre"]),
        ),
        (
            "safety_scale_down_with_scale_up",
            "safety",
            "search 4 -> 3 with cart 4 -> 5 in one plan: not a scale-down, medium by its blast radius",
            safety(
                [scale("search", 3), scale("cart", 5)], [node("search"), node("cart", team="web")], blast_radius=0.28
            ),
            s_expect(True, "medium", 1, False, ["sre"]),
        ),
        (
            "safety_scale_down_in_freeze",
            "safety",
            "a small scale-down by the agent inside the example year-end freeze: denied like any change",
            safety([scale("search", 3)], [node("search")], blast_radius=0.28, now=IN_FREEZE),
            s_expect(False, "low", 2, False, ["sre", "sre-leads"], ["change_freeze"]),
        ),
        # --- approval -------------------------------------------------------
        (
            "approval_counts_low",
            "approval",
            "an SRE approves a low-risk proposal",
            approval(ALICE),
            a_expect(True, True, 1, 0),
        ),
        (
            "approval_self",
            "approval",
            "the proposer cannot approve",
            approval(ALICE, requester={"kind": "human", "id": "alice"}),
            a_expect(False, False, 0, 1, ["self_approval"], ["quorum_not_met"]),
        ),
        (
            "approval_duplicate",
            "approval",
            "the same person twice counts once",
            approval(ALICE, required=2, approvals=[prior(ALICE)]),
            a_expect(False, False, 1, 1, ["duplicate_approver"], ["quorum_not_met"]),
        ),
        (
            "approval_expired",
            "approval",
            "an approval at the expiry instant does not count",
            approval(ALICE, now="2026-11-21T23:00:00Z"),
            a_expect(False, False, 0, 1, ["expired"], ["quorum_not_met"]),
        ),
        (
            "approval_wrong_group",
            "approval",
            "a developer cannot approve a scale",
            approval(person("dave", ["developer"])),
            a_expect(False, False, 0, 1, ["not_in_approver_group"], ["quorum_not_met"]),
        ),
        (
            "approval_second_of_two",
            "approval",
            "second distinct SRE meets a 2-of-N quorum",
            approval(BOB, risk="medium", required=2, approvals=[prior(ALICE)]),
            a_expect(True, True, 2, 0),
        ),
        (
            "approval_high_no_owner",
            "approval",
            "high risk, two approvers, none from the owning team",
            approval(BOB, risk="high", required=2, approvals=[prior(person("frank", team="data"))]),
            a_expect(True, False, 2, 0, [], ["owner_team_missing"]),
        ),
        (
            "approval_high_met",
            "approval",
            "high risk met by two people, one from payments",
            approval(BOB, risk="high", required=2, approvals=[prior(ALICE)]),
            a_expect(True, True, 2, 0),
        ),
        (
            "approval_denied_proposal",
            "approval",
            "a denied proposal cannot be approved",
            approval(ALICE, safety={**SAFETY_DECISION, "allow": False, "deny": [STALE]}),
            a_expect(False, False, 0, 1, ["proposal_denied"], ["proposal_denied", "quorum_not_met"]),
        ),
        (
            "approval_duplicate_after_quorum",
            "approval",
            "a second approval by the same person does not count, so it meets no quorum (even a met one)",
            approval(ALICE, approvals=[prior(ALICE)]),
            a_expect(False, False, 1, 0, ["duplicate_approver"]),
        ),
        (
            "approval_high_unowned_no_fallback",
            "approval",
            "high risk on a node with no team: two SREs are not enough without the fallback group",
            approval(BOB, risk="high", required=2, approvals=[prior(ALICE)], proposal=UNOWNED_PROPOSAL),
            a_expect(True, False, 2, 0, [], ["unowned_fallback_missing"]),
        ),
        (
            "approval_high_unowned_fallback_met",
            "approval",
            "high risk on a node with no team: met with a member of the fallback group (sre-leads)",
            approval(LEE, risk="high", required=2, approvals=[prior(ALICE)], proposal=UNOWNED_PROPOSAL),
            a_expect(True, True, 2, 0),
        ),
        (
            "approval_freeze_quorum_not_met",
            "approval",
            "inside the example year-end freeze: one sre-lead of the two the window asks for",
            approval(LEE, approvals=[prior(ALICE, at=IN_FREEZE)], now=IN_FREEZE, expires_at=FREEZE_EXPIRY),
            a_expect(True, False, 2, 1, [], ["freeze_quorum_not_met"]),
        ),
        (
            "approval_freeze_quorum_met",
            "approval",
            "inside the example year-end freeze: two sre-leads meet the window's quorum",
            approval(LEE, approvals=[prior(LIA, at=IN_FREEZE)], now=IN_FREEZE, expires_at=FREEZE_EXPIRY),
            a_expect(True, True, 2, 0),
        ),
    ]


def main() -> None:
    """Rewrite every case file."""
    for old in HERE.glob("*.json"):
        old.unlink()
    for name, package, description, inp, expected in cases():
        doc = {"name": name, "package": package, "description": description, "input": inp, "expected": expected}
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
