"""The queue and proposal pages over a real RemediationWorkflow waiting for approval."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from controller.adapters.temporal_server import TemporalRuntime
from tests.controller.api.conftest import Api, Pending, close, running_stack, serving, start_pending, with_forecast
from tests.controller.api_web.conftest import HTML, signed_in
from workflows import RemediationWorkflow


@pytest.fixture
def app(api: Api) -> object:
    """The module's app (its users: vera viewer, alice and bob approvers, ada admin)."""
    return api.app


def forms(page: httpx.Response) -> list[str]:
    """The actions of the page's POST forms."""
    return re.findall(r'<form method="post" action="([^"]+)"', page.text)


async def live_until_terminal(http: httpx.AsyncClient, proposal_id: str, within: float = 40.0) -> list[str]:
    """Poll the page's live endpoint like its script does; the stages seen, in order."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        body = (await http.get(f"/proposals/{proposal_id}/live", headers={"X-Twinops-Fetch": "1"})).json()
        if not seen or seen[-1] != body["stage"]:
            seen.append(body["stage"])
        if body["terminal"]:
            return seen
        await asyncio.sleep(0.25)
    raise AssertionError(f"no terminal stage within {within}s: {seen}")


async def test_the_queue_shows_the_pending_proposal_and_counts_it_in_the_title(
    api: Api, pending: Pending, app: object
) -> None:
    async with signed_in(app, api.tokens["vera"]) as (http, _):
        page = await http.get("/", headers=HTML)
        rows = await http.get("/queue/rows", headers={"X-Twinops-Fetch": "1"})
        other_risk = await http.get("/?risk=critical&status=open", headers=HTML)
        too_long = await http.get("/?team=" + "x" * 300, headers=HTML)
        bad_status = await http.get("/?status=nonsense", headers=HTML)
    assert "<title>(1) twinops queue</title>" in page.text
    assert f'href="/proposals/{pending.proposal_id}"' in page.text
    assert rows.headers["x-twinops-waiting"] == "1" and pending.proposal_id in rows.text
    assert rows.text.lstrip().startswith("<tr")  # the body alone, for the script to swap in
    assert "No proposals match." in other_risk.text and "<title>twinops queue</title>" in other_risk.text
    assert too_long.status_code == 422 and "filter 'team'" in html.unescape(too_long.text)
    assert bad_status.status_code == 422 and "unknown status" in bad_status.text
    assert bad_status.headers["content-type"].startswith("text/html")


async def test_a_viewer_reads_everything_but_gets_no_forms_and_a_forged_post_is_refused(
    api: Api, pending: Pending, app: object
) -> None:
    url = f"/proposals/{pending.proposal_id}"
    async with signed_in(app, api.tokens["vera"]) as (http, csrf):
        page = await http.get(url, headers=HTML)
        forged = await http.post(url + "/approve", data={"csrf_token": csrf, "comment": "lgtm"}, headers=HTML)
    assert page.status_code == 200
    assert forms(page) == ["/logout"]
    assert ">Approve</button>" not in page.text and ">Reject</button>" not in page.text
    # The ten-second summary, the picture, the sparklines and the policy all render.
    assert "At a glance" in page.text and "awaiting approval" in page.text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="graph"' in page.text
    assert 'class="spark"' in page.text and "after the fix" in page.text
    assert "Bundle SHA-256" in page.text and "Alternatives considered" in page.text
    assert "<dt>Forecast</dt>" not in page.text  # planned without demand history
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("text/html")
    assert "needs the approver role" in forged.text
    state = await pending.handle.query(RemediationWorkflow.state)
    assert state.approvals == []


async def test_the_forecast_the_plan_was_sized_from_is_on_the_page_and_in_the_api(api: Api, app: object) -> None:
    proposal, outlook = with_forecast(api.stack.proposal())
    found = await start_pending(api, proposal=proposal)
    try:
        detail = (await api.get(f"/api/v1/proposals/{found.proposal_id}", "vera")).json()
        async with signed_in(app, api.tokens["vera"]) as (http, _):
            page = await http.get(f"/proposals/{found.proposal_id}", headers=HTML)
    finally:
        await close(api, found)
    forecast = detail["forecast"]
    assert forecast["sentence"] == outlook.sentence() and outlook.sentence() not in detail["rationale"]
    assert forecast["method"] == "seasonal_daily" and forecast["band"] == 0.06 and forecast["window_seconds"] == 420
    assert forecast["peak_rps"] == 1840 and forecast["planning_rps"] == 1950.4
    assert datetime.fromisoformat(forecast["crossing_at"]) == outlook.crossing_at
    assert datetime.fromisoformat(forecast["peak_at"]) == outlook.peak_at
    text = html.unescape(page.text)
    assert page.status_code == 200 and "<dt>Forecast</dt>" in text
    assert f"{outlook.sentence()}; sized for 1,950 rps over the next 7 min (readiness + cool-down)." in text
    assert outlook.crossing_at is not None
    crossing = outlook.crossing_at.strftime("%Y-%m-%d %H:%M UTC")
    assert "The upper band crosses the target at <time datetime=" in text and f">{crossing}</time>" in text


async def test_approvers_decide_on_the_page_and_watch_it_complete(temporal: TemporalRuntime, tmp_path: Path) -> None:
    # The plan executes and changes the estate: a stack of its own, not the module's.
    async with running_stack(temporal, tmp_path) as stack, serving(stack) as api:
        pending = await start_pending(api)
        await decide_and_complete(api, pending)


async def decide_and_complete(api: Api, pending: Pending) -> None:
    """Alice approves (counted), again (409), Bob rejects blank (422) then approves (quorum); it completes."""
    app, url = api.app, f"/proposals/{pending.proposal_id}"
    async with (
        signed_in(app, api.tokens["alice"]) as (alice, alice_csrf),
        signed_in(app, api.tokens["bob"]) as (
            bob,
            bob_csrf,
        ),
    ):
        page = await alice.get(url, headers=HTML)
        assert forms(page) == ["/logout", url + "/approve", url + "/reject", url + "/cancel"]

        first = await alice.post(
            url + "/approve", data={"csrf_token": alice_csrf, "comment": "looks right"}, headers=HTML
        )
        assert first.status_code == 200, first.text
        assert "Your approval counted." in first.text

        twice = await alice.post(url + "/approve", data={"csrf_token": alice_csrf}, headers=HTML)
        assert twice.status_code == 409
        assert "Approval refused." in twice.text and "already approved" in twice.text

        blank = await bob.post(url + "/reject", data={"csrf_token": bob_csrf, "reason": "   "}, headers=HTML)
        assert blank.status_code == 422
        assert 'aria-invalid="true" aria-describedby="reason-error"' in blank.text

        second = await bob.post(url + "/approve", data={"csrf_token": bob_csrf, "comment": "ok"}, headers=HTML)
        assert second.status_code == 200, second.text
        assert "Approved: quorum met." in second.text

        stages = await live_until_terminal(bob, pending.proposal_id)
        assert stages[-1] == "completed", stages
        done = await bob.get(url, headers=HTML)
        trail = await bob.get(f"/remediations/{pending.proposal_id}/trail", headers=HTML)
        history = await bob.get("/history", headers=HTML)
    assert 'data-terminal="true"' in done.text and 'id="decide"' not in forms(done)
    assert (
        ">Approve</button>" in done.text and 'id="decide" class="card" aria-labelledby="decide-h" hidden' in done.text
    )
    assert trail.status_code == 200
    kinds = re.findall(r'<span class="badge">([a-z ]+)</span>', trail.text)
    # The trail may still be catching up with the inbox's "completed": the steps and verification are in it.
    assert kinds[0] == "proposed" and kinds.count("approved") == 2 and "verified" in kinds, kinds
    assert 'id="verify-button"' in trail.text
    assert "approved by <strong>alice</strong>: “looks right”" in history.text
    assert "approved by <strong>bob</strong>" in history.text


async def test_a_rejection_needs_a_reason_and_shows_who_rejected(api: Api, pending: Pending, app: object) -> None:
    url = f"/proposals/{pending.proposal_id}"
    async with signed_in(app, api.tokens["alice"]) as (http, csrf):
        rejected = await http.post(
            url + "/reject", data={"csrf_token": csrf, "reason": "not during the sale"}, headers=HTML
        )
        late = await http.post(url + "/approve", data={"csrf_token": csrf}, headers=HTML)
        stages = await live_until_terminal(http, pending.proposal_id)
        history = await http.get("/history", headers=HTML)
    assert rejected.status_code == 200 and "you rejected the proposal: not during the sale" in rejected.text
    assert late.status_code == 409
    assert stages[-1] == "rejected"
    assert "rejected by <strong>alice</strong>: “not during the sale”" in history.text


async def test_unknown_things_are_html_pages_on_pages_and_problems_on_the_api(api: Api, app: object) -> None:
    async with signed_in(app, api.tokens["vera"]) as (http, _):
        page = await http.get("/proposals/p-nothing-like-this", headers=HTML)
        trail = await http.get("/remediations/nothing/trail", headers=HTML)
        nowhere = await http.get("/no/such/page", headers=HTML)
        api_404 = await http.get("/api/v1/no-such-endpoint", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "unknown proposal" in page.text
    assert trail.status_code == 404 and "no audit events" in trail.text
    assert nowhere.status_code == 404 and nowhere.headers["content-type"].startswith("text/html")
    assert api_404.status_code == 404 and api_404.headers["content-type"] == "application/problem+json"
