"""The proposals API on a real stack: the queue, one proposal in full, approve, reject, cancel.

Proposals come from the real agent on the `hidden_downstream` scenario (high risk: the shipped
approval policy wants two `sre` approvals); decisions go through the API, the approval service
signs them, the workflow asks regorus whether they count.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.views import decode_cursor, encode_cursor, list_proposals, queue
from tests.controller.api.conftest import PROBLEM_JSON, Api, Pending, running_stack, serving, start_pending
from tests.workflows.conftest import eventually
from tests.workflows.test_remediation import start
from workflows import RemediationWorkflow, Stage, Timeouts
from workflows.ports import InboxEntry, InboxStatus

pytestmark = pytest.mark.integration


def invalid_names(response_json: dict[str, object]) -> list[str]:
    """The fields a 422 problem names."""
    params = response_json.get("invalid-params")
    assert isinstance(params, list), response_json
    return [str(p["name"]) for p in params]


def synthetic(n: int, status: InboxStatus, target: str, *, risk: str = "medium", **extra: object) -> InboxEntry:
    """An inbox row for a proposal whose workflow is not running (for paging and ordering)."""
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    fields: dict[str, object] = {
        "proposal_id": f"p-{target}-{n:04d}",
        "workflow_id": f"remediation-{target}-{n:04d}",
        "twin_id": "shop",
        "status": status,
        "risk": risk,
        "target": target,
        "summary": f"synthetic {n}",
        "created_at": created,
        "required_approvals": 2,
        **extra,
    }
    return InboxEntry.model_validate(fields)


async def test_list_shows_the_pending_proposal_with_its_requirement(api: Api, pending: Pending) -> None:
    answer = await api.get("/api/v1/proposals", "vera")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    [row] = [i for i in page["items"] if i["proposal_id"] == pending.proposal_id]
    assert row["status"] == "pending" and row["risk"] == "high" and row["target"] == pending.target
    assert row["requirement"] == "2 required from sre, 0 given; still needed: 2 more needed"
    assert row["age_seconds"] >= 0
    # Every inbox field is there in JSON form.
    assert set(InboxEntry.model_fields) <= set(row)
    for query, expected in [
        (f"node={pending.target}", 1),
        ("node=nowhere", 0),
        (f"node={pending.target}&risk=high", 1),
        (f"node={pending.target}&risk=low", 0),
        (f"node={pending.target}&status=pending", 1),
        (f"node={pending.target}&status=closed", 0),
        (f"node={pending.target}&status=all", 1),
        (f"node={pending.target}&team={row['team']}", 1),
        (f"node={pending.target}&team=nobody", 0),
    ]:
        found = (await api.get(f"/api/v1/proposals?{query}", "vera")).json()["items"]
        assert len(found) == expected, query


async def test_list_pages_by_keyset_and_refuses_bad_input(api: Api) -> None:
    for n in range(7):
        api.ctx.inbox.upsert_sync(synthetic(n, InboxStatus.PENDING if n % 2 else InboxStatus.COMPLETED, "paged"))
    seen: list[str] = []
    cursor = None
    while True:
        query = "node=paged&status=all&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(f"/api/v1/proposals?{query}", "vera")).json()
        seen += [item["proposal_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p-paged-{n:04d}" for n in reversed(range(7))]
    # A row that arrives while paging does not shift the pages already handed out.
    first = (await api.get("/api/v1/proposals?node=paged&status=all&limit=3", "vera")).json()
    api.ctx.inbox.upsert_sync(synthetic(99, InboxStatus.PENDING, "paged"))
    after = f"node=paged&status=all&limit=3&cursor={first['next_cursor']}"
    second = (await api.get(f"/api/v1/proposals?{after}", "vera")).json()
    assert [i["proposal_id"] for i in second["items"]] == ["p-paged-0003", "p-paged-0002", "p-paged-0001"]
    assert decode_cursor(encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "x")) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        "x",
    )

    for query, field in [
        ("cursor=not-a-cursor", "query.cursor"),
        ("cursor=eyJ4IjoxfQ", "query.cursor"),  # valid base64 JSON, not ours
        ("status=sleeping", "query.status"),
        ("limit=0", "query.limit"),
        ("limit=501", "query.limit"),
        ("limit=many", "query.limit"),
    ]:
        answer = await api.get(f"/api/v1/proposals?{query}", "vera")
        assert answer.status_code == 422, query
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert invalid_names(answer.json()) == [field], query


async def test_detail_has_everything_an_approver_needs(api: Api, pending: Pending) -> None:
    answer = await api.get(f"/api/v1/proposals/{pending.proposal_id}", "vera")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert detail["entry"]["proposal_id"] == pending.proposal_id
    assert detail["stage"] == "awaiting_approval"
    assert detail["state"]["stage"] == "awaiting_approval" and detail["state"]["plan_hash"]
    assert detail["requirement"].startswith("2 required from sre, 0 given")
    assert detail["rationale"] and detail["intent"] == "remediate"
    assert detail["forecast"] is None  # planned without demand history
    assert any(f["node"] == pending.target for f in detail["findings"])
    assert all(b["evidence"] for b in detail["beliefs"])
    steps = detail["plan"]["steps"]
    assert [s["words"] for s in steps] == ["scale gateway -> 8", "scale checkout -> 6"]
    assert steps[0]["compensation_words"] == "scale gateway -> 4"
    gateway = detail["plan"]["predicted"]["gateway"]
    assert gateway["utilization_before"] > 1 > gateway["utilization_after"]
    assert detail["alternatives"] and all(a["lost_because"] for a in detail["alternatives"])
    assert detail["unmet"] == []
    policy = detail["policy"]
    assert policy["allow"] is True and policy["risk"] == "high" and policy["reasons"] == []
    assert len(policy["bundle_sha256"]) == 64 and policy["engine"] == "regorus"
    assert policy["approver_groups"] == ["sre"] and policy["required_approvals"] == 2
    assert detail["approvals"] == {"required": 2, "given": [], "groups": ["sre"], "pending": [], "still_needed": 2}
    assert detail["deadline"] and detail["steps_done"] == []
    assert detail["trail_url"] == f"/api/v1/remediations/{pending.proposal_id}/trail"
    # The graph and history the agent recorded with the proposal.
    context = detail["context"]
    assert context is not None and {n["id"] for n in context["nodes"]} >= {"gateway", "checkout"}
    assert context["edges"] and context["target_utilization"] == pytest.approx(0.8)
    # A unique prefix is enough.
    prefix = await api.get(f"/api/v1/proposals/{pending.proposal_id[:12]}", "vera")
    assert prefix.json()["entry"]["proposal_id"] == pending.proposal_id


async def test_unknown_and_ambiguous_ids_are_404(api: Api) -> None:
    api.ctx.inbox.upsert_sync(synthetic(1, InboxStatus.COMPLETED, "twins"))
    api.ctx.inbox.upsert_sync(synthetic(2, InboxStatus.COMPLETED, "twins"))
    unknown = await api.get("/api/v1/proposals/p-nothing", "vera")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM_JSON
    assert unknown.json()["detail"] == "unknown proposal 'p-nothing'"
    ambiguous = await api.get("/api/v1/proposals/p-twins-000", "vera")
    assert ambiguous.status_code == 404 and ambiguous.json()["type"].endswith("/ambiguous-id")
    assert "p-twins-0001" in ambiguous.json()["detail"] and "p-twins-0002" in ambiguous.json()["detail"]
    for verb, body in [("approve", {}), ("reject", {"reason": "no"}), ("cancel", {"reason": "no"})]:
        answer = await api.post(f"/api/v1/proposals/p-nothing/{verb}", "alice", json=body)
        assert answer.status_code == 404, verb
    # A proposal whose workflow is gone still shows, from the inbox and the trail (state null, stage from the inbox).
    detail = (await api.get("/api/v1/proposals/p-twins-0001", "vera")).json()
    assert detail["state"] is None and detail["stage"] == "completed" and detail["plan"] is None


async def test_two_approvals_reach_quorum_and_the_workflow_completes(temporal: TemporalRuntime, tmp_path: Path) -> None:
    # The plan executes and changes the estate: a stack of its own, so other tests still get their proposal.
    async with running_stack(temporal, tmp_path) as stack, serving(stack) as api:
        pending = await start_pending(api)
        url = f"/api/v1/proposals/{pending.proposal_id}"
        first = await api.post(f"{url}/approve", "alice", json={"comment": "looks right"})
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["counted"] is True and answer["quorum_met"] is False
        assert answer["approvals"] == ["alice"] and answer["still_needed"] == 1
        assert answer["sentence"].startswith(f"approval counted for proposal {pending.proposal_id} (1 so far)")
        # The same approver again does not count twice: the workflow refuses it, and the answer says why.
        again = await api.post(f"{url}/approve", "alice", json={})
        assert again.status_code == 409 and "'alice' has already approved" in again.json()["detail"]
        detail = (await api.get(url, "vera")).json()
        assert detail["approvals"]["given"] == ["alice"] and detail["approvals"]["still_needed"] == 1

        second = (await api.post(f"{url}/approve", "bob", json={})).json()
        assert second["counted"] is True and second["quorum_met"] is True and second["still_needed"] == 0
        assert second["sentence"] == f"approved proposal {pending.proposal_id}: quorum met, execution starts"
        # While it executes and verifies (an open status), the workflow refuses any other decision.
        refused = await api.post(f"{url}/reject", "ada", json={"reason": "changed my mind"})
        assert refused.status_code == 409, refused.text
        assert pending.proposal_id in refused.json()["detail"]

        result = await pending.handle.result()
        assert result.stage == Stage.COMPLETED, result.reasons
        await eventually(lambda: api.entry(pending.proposal_id), lambda e: e.status is InboxStatus.COMPLETED)
        done = (await api.get(url, "vera")).json()
        assert done["state"] is None and done["stage"] == "completed"
        assert [s["words"] for s in done["steps_done"]] == ["scale gateway -> 8", "scale checkout -> 6"]
        assert done["requirement"].endswith("quorum met")
        # Decided: a further decision is a conflict that says what happened.
        late = await api.post(f"{url}/approve", "ada", json={})
        assert late.status_code == 409 and late.headers["content-type"] == PROBLEM_JSON
        assert late.json()["detail"] == f"proposal {pending.proposal_id!r} is completed: it can no longer be approved"


async def test_self_approval_does_not_count(api: Api, pending: Pending) -> None:
    # The agent that proposed this is 'bdi'; a person signing in under that name is still its proposer.
    api.tokens["bdi"] = api.ctx.identities.add_user("bdi", "approver", "edge", ["sre"])
    answer = (await api.post(f"/api/v1/proposals/{pending.proposal_id}/approve", "bdi", json={})).json()
    assert answer["counted"] is False and answer["approvals"] == []
    assert any("proposed this change and cannot approve it" in r for r in answer["reasons"]), answer
    assert answer["sentence"].startswith(f"approval not counted for proposal {pending.proposal_id}")


async def test_reject_needs_a_reason_and_ends_the_proposal(api: Api, pending: Pending) -> None:
    url = f"/api/v1/proposals/{pending.proposal_id}/reject"
    for body, field in [
        ({}, "body.reason"),
        ({"reason": "   "}, "body.reason"),
        ({"reason": 7}, "body.reason"),
        ({"reason": "x", "because": "y"}, "body.because"),
    ]:
        answer = await api.post(url, "alice", json=body)
        assert answer.status_code == 422, body
        assert invalid_names(answer.json()) == [field], body
    not_json = await api.post(url, "alice", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.headers["content-type"] == PROBLEM_JSON
    answer = await api.post(url, "bob", json={"reason": "the sale starts in ten minutes"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["sentence"] == f"rejected proposal {pending.proposal_id}: the sale starts in ten minutes"
    assert (await pending.handle.result()).stage == Stage.REJECTED
    state = await pending.handle.query(RemediationWorkflow.state)
    assert any("rejected by bob" in r for r in state.reasons)


async def test_cancel_needs_a_reason_and_stops_the_workflow(api: Api, pending: Pending) -> None:
    url = f"/api/v1/proposals/{pending.proposal_id}/cancel"
    assert invalid_names((await api.post(url, "alice", json={"reason": ""})).json()) == ["body.reason"]
    answer = await api.post(url, "alice", json={"reason": "wrong twin"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "proposal_id": pending.proposal_id,
        "status": "cancellation_requested",
        "sentence": f"cancellation of proposal {pending.proposal_id} requested by alice: wrong twin",
    }
    await eventually(lambda: api.entry(pending.proposal_id), lambda e: e.status.value == "cancelled")
    again = await api.post(url, "alice", json={"reason": "again"})
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


async def test_an_expired_proposal_is_409(api: Api) -> None:
    proposal = api.stack.proposal()
    handle = await start(
        api.stack,
        proposal,
        timeouts=Timeouts(approval_seconds=1, expiry_seconds=1, verification_window_seconds=1),
    )
    assert (await handle.result()).stage == Stage.EXPIRED
    await eventually(
        lambda: api.entry(proposal.id), lambda e: e.workflow_id == handle.id and e.status.value == "expired"
    )
    for verb, body, done in [("approve", {}, "approved"), ("reject", {"reason": "late"}, "rejected")]:
        answer = await api.post(f"/api/v1/proposals/{proposal.id}/{verb}", "alice", json=body)
        assert answer.status_code == 409, answer.text
        assert answer.json()["detail"] == f"proposal {proposal.id!r} is expired: it can no longer be {done}"
        assert answer.json()["type"].endswith("/proposal-not-decidable")


def plans(api: Api, read: Callable[[], object]) -> list[str]:
    """SQLite's query plan of every statement `read` runs."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM approval_inbox" in statement:
            seen.append((statement, parameters))

    engine = api.ctx.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        read()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert seen, "no read of the inbox"
    with engine.connect() as conn:
        return [
            " / ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in seen
        ]


async def test_the_queue_puts_what_waits_for_a_human_first(api: Api) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    rows = [
        synthetic(1, InboxStatus.PENDING, "queued", risk="high", deadline=soon + timedelta(minutes=30)),
        synthetic(2, InboxStatus.PENDING, "queued", risk="high", deadline=soon),
        synthetic(3, InboxStatus.ESCALATED, "queued", risk="medium", deadline=soon),
        synthetic(4, InboxStatus.PENDING, "queued", risk="low"),
        synthetic(5, InboxStatus.EXECUTING, "queued", risk="high"),
        synthetic(6, InboxStatus.COMPLETED, "queued", risk="high"),
        synthetic(7, InboxStatus.VERIFYING, "queued", risk="low"),
    ]
    for row in rows:
        api.ctx.inbox.upsert_sync(row)
    order = [s.proposal_id[-1] for s in queue(api.ctx, node="queued", status="all")]
    # Waiting for a human, riskiest first and soonest due first; then the rest newest first.
    assert order == ["2", "1", "3", "4", "7", "6", "5"]
    assert [s.proposal_id[-1] for s in queue(api.ctx, node="queued")] == ["2", "1", "3", "4", "7", "5"]
    assert [s.proposal_id[-1] for s in queue(api.ctx, node="queued", limit=2)] == ["2", "1"]
    assert [s.proposal_id[-1] for s in queue(api.ctx, node="queued", status="closed")] == ["6"]
    assert [s.proposal_id[-1] for s in queue(api.ctx, node="queued", risk="high", status="escalated")] == []
    # Every read is on an index, never a scan of the whole inbox.
    for read in [
        lambda: queue(api.ctx),
        lambda: queue(api.ctx, status="all", node="queued"),
        lambda: list_proposals(api.ctx),
        lambda: list_proposals(api.ctx, status="pending", cursor=encode_cursor(soon, "p-x")),
        lambda: list_proposals(api.ctx, team="edge"),
    ]:
        for plan in plans(api, read):
            assert "USING INDEX" in plan and "SCAN approval_inbox" not in plan.replace(" USING INDEX", "~"), plan
