"""POST /api/v1/alerts (Alertmanager's webhook) and POST /api/v1/twins/{id}/snapshots, on a real stack and loop."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from controller.adapters.pushed_snapshots import PushedTwinSource, SqlPushedSnapshots
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.agent_loop import agent_loop_id
from tests.controller.api.conftest import PROBLEM_JSON, Api, running_stack, serving
from tests.workflows.conftest import eventually
from tests.workflows.test_event_ticks import LONG_TICK, _end, _heal
from twin.actions import Action
from twin.sources import StaleSnapshotError
from workflows import AgentLoopInput, AgentLoopWorkflow, Timeouts
from workflows.agent_loop import AgentLoopState

pytestmark = pytest.mark.integration

Loop = WorkflowHandle[AgentLoopWorkflow, AgentLoopState]


@pytest_asyncio.fixture
async def served(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[tuple[Api, list[Action]]]:
    """The API over a stack whose estate is healthy (the undo brings the trouble back), and a system user."""
    async with running_stack(temporal, tmp_path) as stack, serving(stack) as api:
        api.tokens["am"] = api.ctx.identities.add_user("alertmanager", "system")
        yield api, _heal(stack)


async def _loop(api: Api) -> Loop:
    handle = await api.stack.client.start_workflow(
        AgentLoopWorkflow.run,
        AgentLoopInput(
            twin_id="shop",
            tick_seconds=LONG_TICK,
            approval_key=api.stack.services.signer.public_key_b64,
            timeouts=Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
        ),
        id=agent_loop_id("shop"),
        task_queue=api.stack.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    await eventually(lambda: handle.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 1 and bool(s.nodes))
    return handle


def webhook(*alerts: dict[str, Any], status: str = "firing", version: str = "4") -> dict[str, Any]:
    """An Alertmanager webhook body as Alertmanager 0.25 sends it."""
    return {
        "receiver": "twinops",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": "TwinopsNodeHot"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": version,
        "groupKey": '{}:{alertname="TwinopsNodeHot"}',
        "truncatedAlerts": 0,
    }


def alert(node: str | None, *, status: str = "firing", fingerprint: str = "a1") -> dict[str, Any]:
    labels = {"alertname": "TwinopsNodeHot", "severity": "page"}
    if node is not None:
        labels["service"] = node
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{node} is over 90% busy"},
        "startsAt": datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


async def test_a_firing_alert_wakes_the_loop_and_shows_on_the_proposal(served: tuple[Api, list[Action]]) -> None:
    api, undo = served
    loop = await _loop(api)
    try:
        for action in undo:
            api.stack.simulator.apply(action)
        target = api.stack.proposal().target
        answer = await api.post("/api/v1/alerts", "am", json=webhook(alert(target)))
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["woke"] is True
        assert [(a["node"], a["outcome"]) for a in body["alerts"]] == [(target, "accepted")]
        status = await eventually(lambda: loop.query(AgentLoopWorkflow.state), lambda s: s.proposals_started >= 1)
        assert status.woken == 1 and status.ticks_done == 2
        proposal_id = status.open[target].removeprefix("remediation-")
        detail = await eventually(
            lambda: api.get(f"/api/v1/proposals/{proposal_id}", "vera"), lambda r: r.status_code == 200
        )
        paged = [f for f in detail.json()["findings"] if f["kind"] == "alert"]
        assert len(paged) == 1 and "TwinopsNodeHot firing on" in paged[0]["message"], detail.json()["findings"]
        assert f"Paged: alertmanager alert TwinopsNodeHot firing on {target}" in detail.json()["rationale"]
        # Alertmanager repeats a firing alert: held already, refreshed, no tick. Then it resolves.
        again = await api.post("/api/v1/alerts", "am", json=webhook(alert(target)))
        assert again.json()["woke"] is False and again.json()["alerts"][0]["outcome"] == "repeated"
        # Resolved, it is forgotten even if its node label no longer names a node of the twin.
        gone = await api.post(
            "/api/v1/alerts", "am", json=webhook(alert("renamed", status="resolved"), status="resolved")
        )
        assert gone.status_code == 202 and gone.json()["alerts"][0]["outcome"] == "resolved", gone.json()
        final = await eventually(lambda: loop.query(AgentLoopWorkflow.state), lambda s: not s.alerts)
        assert final.woken == 1, final
        trail = await api.stack.services.ledger.trail("agent-loop/shop")
        assert [r.actor for r in trail if r.kind.value == "detected"] == ["user:alertmanager"]
        exposition = (await api.get("/metrics")).text
        for line in (
            'twinops_alerts_received_total{outcome="accepted"} 1.0',
            'twinops_alerts_received_total{outcome="repeated"} 1.0',
            'twinops_alerts_received_total{outcome="resolved"} 1.0',
            'twinops_loop_wakeups_total{reason="alert"} 3.0',
        ):
            assert line in exposition, line
    finally:
        await _end(api.stack, loop)


async def test_alerts_it_cannot_place_are_answered_and_ignored(served: tuple[Api, list[Action]]) -> None:
    api, _ = served
    loop = await _loop(api)
    try:
        answer = await api.post(
            "/api/v1/alerts", "am", json=webhook(alert("nosuch", fingerprint="x"), alert(None, fingerprint="y"))
        )
        assert answer.status_code == 202
        body = answer.json()
        assert body["woke"] is False
        assert [(a["outcome"], a["detail"]) for a in body["alerts"]] == [
            ("ignored", "twin 'shop' has no node 'nosuch'"),
            ("ignored", "no 'service' label: it names no node of twin 'shop'"),
        ]
        assert (await loop.query(AgentLoopWorkflow.state)).woken == 0
    finally:
        await _end(api.stack, loop)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (webhook(alert("gateway"), version="3"), "version"),
        ({"version": "4", "status": "firing"}, "alerts"),
        (webhook({**alert("gateway"), "startsAt": "yesterday"}), "startsAt"),
        (webhook({**alert("gateway"), "status": "burning"}), "status"),
        ([1, 2, 3], "body"),
    ],
)
async def test_a_malformed_webhook_is_a_problem_naming_the_field(
    served: tuple[Api, list[Action]], body: Any, field: str
) -> None:
    api, _ = served
    answer = await api.post("/api/v1/alerts", "am", json=body)
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM_JSON
    assert any(field in p["name"] for p in answer.json()["invalid-params"]), answer.json()
    not_json = await api.post(
        "/api/v1/alerts", "am", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.headers["content-type"] == PROBLEM_JSON


async def test_only_a_system_user_may_post_and_basic_auth_works(served: tuple[Api, list[Action]]) -> None:
    api, _ = served
    body = webhook(alert("nosuch"))
    anonymous = await api.post("/api/v1/alerts", None, json=body)
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM_JSON
    for human in ("vera", "alice", "ada"):
        refused = await api.post("/api/v1/alerts", human, json=body)
        assert refused.status_code == 403 and "not a system user" in refused.json()["detail"], human
    # A system user reads nothing: it is no viewer, neither in the API nor on a page (bearer or basic).
    assert (await api.get("/api/v1/proposals", "am")).status_code == 403
    for page in ("/", "/queue/rows", "/history", "/playbook-runs"):
        assert (await api.get(page, "am")).status_code == 403, page
    loop = await _loop(api)
    try:
        basic = base64.b64encode(f"alertmanager:{api.tokens['am']}".encode()).decode()
        ok = await api.post("/api/v1/alerts", None, json=body, headers={"Authorization": f"Basic {basic}"})
        assert ok.status_code == 202, ok.text
        wrong = base64.b64encode(f"alice:{api.tokens['am']}".encode()).decode()
        refused = await api.post("/api/v1/alerts", None, json=body, headers={"Authorization": f"Basic {wrong}"})
        assert refused.status_code == 401 and "not 'alice'" in refused.json()["detail"]
    finally:
        await _end(api.stack, loop)


async def test_with_no_loop_running_the_sender_is_told_to_send_again(served: tuple[Api, list[Action]]) -> None:
    api, _ = served
    answer = await api.post("/api/v1/alerts", "am", json=webhook(alert("gateway")))
    assert answer.status_code == 503 and answer.headers["content-type"] == PROBLEM_JSON
    assert "agent loop of twin 'shop' is not running" in answer.json()["detail"]


async def test_a_pushed_snapshot_is_stored_once_wakes_the_loop_and_feeds_the_push_source(
    served: tuple[Api, list[Action]],
) -> None:
    api, _ = served
    loop = await _loop(api)
    try:
        snapshot = api.stack.simulator.snapshot()
        doc = json.loads(snapshot.to_json())
        first = await api.post("/api/v1/twins/shop/snapshots", "am", content=snapshot.to_json())
        assert first.status_code == 202 and first.json()["stored"] and first.json()["woke"], first.text
        await eventually(lambda: loop.query(AgentLoopWorkflow.state), lambda s: s.woken == 1)
        again = await api.post("/api/v1/twins/shop/snapshots", "am", content=snapshot.to_json())
        assert again.status_code == 202 and not again.json()["stored"] and not again.json()["woke"]
        source = PushedTwinSource(SqlPushedSnapshots(api.ctx.engine), "shop", max_age_seconds=120)
        assert await source.latest() == snapshot
        old = {**doc, "observed_at": (snapshot.observed_at - timedelta(hours=1)).isoformat()}
        late = await api.post("/api/v1/twins/shop/snapshots", "am", json=old)
        assert late.status_code == 202 and not late.json()["woke"] and "newer" in late.json()["detail"]
        assert await source.latest() == snapshot
        stale = PushedTwinSource(SqlPushedSnapshots(api.ctx.engine), "shop", max_age_seconds=0.0)
        with pytest.raises(StaleSnapshotError):
            await stale.latest()
    finally:
        await _end(api.stack, loop)


async def test_a_bad_snapshot_is_a_problem_naming_what_is_wrong(served: tuple[Api, list[Action]]) -> None:
    api, _ = served
    doc = json.loads(api.stack.simulator.snapshot().to_json())
    doc["nodes"][0]["replicas"] = -1
    bad = await api.post("/api/v1/twins/shop/snapshots", "am", json=doc)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON
    assert "replicas" in bad.json()["detail"]
    fine = json.loads(api.stack.simulator.snapshot().to_json())
    other = await api.post(f"/api/v1/twins/other-{uuid.uuid4().hex[:6]}/snapshots", "am", json=fine)
    assert other.status_code == 422 and "the snapshot is of twin 'shop'" in other.json()["detail"]
    assert (await api.post("/api/v1/twins/shop/snapshots", "vera", json=doc)).status_code == 403
    # A snapshot from the future would stay "fresh" and hide every real one after it.
    ahead = {**fine, "observed_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()}
    future = await api.post("/api/v1/twins/shop/snapshots", "am", json=ahead)
    assert future.status_code == 422 and future.json()["invalid-params"][0]["name"] == "body.observed_at"
    assert "ahead of this server's clock" in future.json()["detail"]
    nothing = PushedTwinSource(SqlPushedSnapshots(api.ctx.engine), "shop", max_age_seconds=120)
    with pytest.raises(Exception, match="no snapshot pushed yet"):
        await nothing.latest()
