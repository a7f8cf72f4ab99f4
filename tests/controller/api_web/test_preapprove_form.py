"""Pre-approving the next run on the runs page: the form for approvers only, CSRF, redirect after post, errors."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest_asyncio

from controller.adapters.temporal_server import TemporalRuntime
from controller.app.playbooks import find_playbook
from tests.controller.api_web.conftest import HTML, Web, open_web, signed_in
from tests.controller.playbook_run_factory import small_report
from tests.workflows.test_playbook_preapproval import PLAYBOOK
from workflows.contracts import PreapprovalGrant
from workflows.playbook_contracts import playbook_digest

NAME = "trim-by-hand"
FORM = 'action="/playbook-runs/preapprovals#preapprove"'


def at(minutes: float) -> str:
    """Now plus `minutes` as the form takes it: UTC, to the minute, no zone."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


def preapproval_rows(page: str) -> list[str]:
    return [html.unescape(r) for r in re.findall(r'<tr data-preapproval="([^"]+)">', page)]


def row_of(page: str, preapproval_id: str) -> str:
    return page.split(f'<tr data-preapproval="{preapproval_id}">')[1].split("</tr>")[0]


def row_link(page: str, preapproval_id: str) -> str:
    found = re.search(r'<a href="([^"]+)">', row_of(page, preapproval_id))
    assert found, preapproval_id
    return html.unescape(found.group(1))


@pytest_asyncio.fixture
async def web(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[Web]:
    """The app over fresh stores, its playbooks folder holding trim-by-hand and nightly."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / f"{NAME}.yaml").write_text(PLAYBOOK)
    (folder / "nightly.yaml").write_text(PLAYBOOK.replace(f"name: {NAME}", "name: nightly"))
    opened = await open_web(tmp_path / "home", temporal, playbooks_dir=folder)
    yield opened
    await opened.ctx.close()


async def preapprove(http: httpx.AsyncClient, csrf: str | None, **fields: str) -> httpx.Response:
    data = {"playbook": NAME, "run_at": at(60), "expires_at": at(120), "comment": "", **fields}
    if csrf is not None:
        data["csrf_token"] = csrf
    return await http.post("/playbook-runs/preapprovals", data=data, headers=HTML)


async def test_the_form_is_shown_to_an_approver_and_not_to_a_viewer(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        approver = await http.get("/playbook-runs?playbook=nightly", headers=HTML)
    async with signed_in(web.app, web.tokens["vera"]) as (http, _):
        viewer = await http.get("/playbook-runs", headers=HTML)
    assert approver.status_code == 200 and viewer.status_code == 200
    page = approver.text
    assert FORM in page and "Pre-approve the next run" in page
    assert f'<input type="hidden" name="csrf_token" value="{csrf}">' in page.split(FORM)[1]
    # Every field has its label; the playbook filter preselects its playbook.
    for field_id, label in (("pa-playbook", "Playbook"), ("pa-run-at", "Run at"), ("pa-expires", "Expires")):
        assert f'<label for="{field_id}">{label}' in page and f'id="{field_id}"' in page
    assert '<label for="pa-comment">Comment' in page
    assert '<option value="nightly" selected>nightly</option>' in page
    assert f'<option value="{NAME}">{NAME}</option>' in page
    assert FORM not in viewer.text and "Pre-approve the next run" not in viewer.text
    assert "No run has been pre-approved." in viewer.text


async def test_an_approver_pre_approves_and_lands_on_the_list_with_a_result(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        answer = await preapprove(http, csrf, comment="fine tonight")
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        match = re.fullmatch(r"/playbook-runs\?preapproved=(pa-[0-9a-f]+)#preapprovals", location)
        assert match, location
        preapproval_id = match.group(1)
        page = await http.get(location, headers=HTML)
    assert page.status_code == 200
    assert 'role="status" id="preapprove-result"' in page.text
    result = html.unescape(page.text.split('id="preapprove-result"')[1].split("</div>")[0])
    assert f"The run of {NAME} v1 at" in result and f"({preapproval_id}); approvals so far: alice." in result
    assert preapproval_rows(page.text) == [preapproval_id]
    row = html.unescape(row_of(page.text, preapproval_id))
    assert '<li>alice <span class="muted">“fine tonight”</span></li>' in row and ">open</span>" in row

    # A viewer reads the list; the link's result message is the approver's alone.
    async with signed_in(web.app, web.tokens["vera"]) as (http, _):
        seen = await http.get(location, headers=HTML)
    assert preapproval_rows(seen.text) == [preapproval_id] and "preapprove-result" not in seen.text


async def test_a_post_without_the_csrf_token_or_from_a_viewer_is_refused(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, _):
        forged = await preapprove(http, None)
        wrong = await preapprove(http, "not-the-token")
    assert forged.status_code == 403 and wrong.status_code == 403
    assert "Form expired or forged" in forged.text
    async with signed_in(web.app, web.tokens["vera"]) as (http, csrf):
        viewer = await preapprove(http, csrf)
    assert viewer.status_code == 403 and "needs the approver role" in viewer.text
    assert web.ctx.preapprovals().store.list_sync() == []


async def test_refusals_are_shown_in_the_page_with_the_form_as_typed(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        past = await preapprove(http, csrf, run_at=at(-60), comment="keep me")
        garbled = await preapprove(http, csrf, expires_at="tomorrow")
        unknown = await preapprove(http, csrf, playbook="nope")
        path = await preapprove(http, csrf, playbook="../secrets")
        run_at = at(60)
        assert (await preapprove(http, csrf, run_at=run_at)).status_code == 303
        twice = await preapprove(http, csrf, run_at=run_at)

    assert past.status_code == 422 and past.headers["content-type"].startswith("text/html")
    text = html.unescape(past.text)
    assert 'aria-invalid="true"' in text and 'aria-describedby="pa-times-help pa-run-at-error"' in text
    error = text.split('id="pa-run-at-error">')[1].split("</p>")[0]
    assert error.startswith("run at ") and error.endswith("is in the past: pre-approve a run still to come")
    assert ">keep me</textarea>" in text and f'<option value="{NAME}" selected>' in text

    assert garbled.status_code == 422
    assert "'tomorrow' is not a time" in html.unescape(garbled.text.split('id="pa-expires-error">')[1])

    assert unknown.status_code == 404 and FORM in unknown.text
    assert "no playbook 'nope' (known: nightly, trim-by-hand)" in html.unescape(unknown.text)
    assert path.status_code == 422 and "'../secrets' is not a playbook name" in html.unescape(path.text)

    assert twice.status_code == 409 and 'role="alert" id="preapprove-result"' in twice.text
    assert "'alice' has already pre-approved pa-" in html.unescape(twice.text)
    assert len(web.ctx.preapprovals().store.list_sync()) == 1


async def test_a_used_pre_approval_names_the_run_that_used_it(web: Web) -> None:
    playbook = find_playbook(NAME, web.settings.playbooks_dir)
    now = datetime.now(UTC)
    store = web.ctx.preapprovals().store
    grant = PreapprovalGrant(
        id="pa-used",
        playbook=NAME,
        version=playbook.version,
        playbook_digest=playbook_digest(playbook),
        run_at=now,
        expires_at=now + timedelta(hours=1),
    )
    store.create_sync(grant, "alice")
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        given = await preapprove(http, csrf, run_at=now.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert given.status_code == 303, given.text
    run_id = "playbook-run-trim-by-hand-20261121T023000Z"
    claim = store.claim_sync(NAME, playbook.version, playbook_digest(playbook), run_id, now)
    assert claim.grant is not None and claim.grant.id == "pa-used"
    await web.ctx.playbook_runs().save(small_report(run_id, playbook=NAME, preapproval="pa-used"))

    async with signed_in(web.app, web.tokens["vera"]) as (http, _):
        page = await http.get(f"/playbook-runs?playbook={NAME}", headers=HTML)
        run = await http.get(row_link(page.text, "pa-used"), headers=HTML)
    row = row_of(page.text, "pa-used")
    assert ">used</span>" in row and f'by run</span> <a href="/playbook-runs/{run_id}">{run_id}</a>' in row
    assert run.status_code == 200 and run_id in run.text  # the link leads to the run's report
