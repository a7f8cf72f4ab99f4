"""The playbook runs pages: the runs newest first, one run's report inside the site, its download; viewers read them."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.controller.api_web.conftest import HTML, Web, browser, signed_in
from tests.controller.playbook_run_factory import HOSTILE, full_report, small_report

NEWEST = full_report("playbook-run-nightly-20261121T020000Z")
OLDER = small_report("playbook-run-nightly-20261120T020000Z", ended_minutes=-24 * 60)
WEEKLY = small_report("playbook-run-weekly-20261121T010000Z", playbook="weekly", ended_minutes=-30, trigger="manual")


@pytest_asyncio.fixture
async def runs(web: Web) -> AsyncIterator[Web]:
    """The app with three stored runs of two playbooks."""
    for report in (OLDER, NEWEST, WEEKLY):
        await web.ctx.playbook_runs().save(report)
    yield web


def run_rows(page: str) -> list[str]:
    return [html.unescape(r) for r in re.findall(r'<tr data-run="([^"]+)">', page)]


async def test_a_viewer_sees_the_runs_newest_first_with_their_counts(runs: Web) -> None:
    async with signed_in(runs.app, runs.tokens["vera"]) as (http, _):
        page = await http.get("/playbook-runs", headers=HTML)
        weekly = await http.get("/playbook-runs?playbook=weekly", headers=HTML)
        none = await http.get("/playbook-runs?playbook=monthly", headers=HTML)
        queue = await http.get("/", headers=HTML)
    assert page.status_code == 200, page.text
    assert run_rows(page.text) == [NEWEST.run_id, WEEKLY.run_id, OLDER.run_id]
    assert f'<a href="/playbook-runs/{NEWEST.run_id}">nightly v3</a>' in page.text
    newest = page.text.split(f'<tr data-run="{NEWEST.run_id}">')[1].split("</tr>")[0]
    assert "partial" in newest and "<li>1 ran</li>" in newest and "<li>1 waiting approval</li>" in newest
    assert "<li>1 skipped</li>" in newest and "by alice" in newest
    assert '<time datetime="2026-11-21T02:00:00Z">2026-11-21 02:00 UTC</time>' in newest
    assert '<a href="/playbook-runs" aria-current="page">Playbook runs</a>' in page.text
    assert '<a href="/playbook-runs">Playbook runs</a>' in queue.text  # in the nav of every page
    assert run_rows(weekly.text) == [WEEKLY.run_id]
    assert "No run of monthly has been reported yet." in none.text


async def test_a_runs_page_shows_the_report_with_trail_links_and_escapes_it(runs: Web) -> None:
    async with signed_in(runs.app, runs.tokens["vera"]) as (http, _):
        page = await http.get(f"/playbook-runs/{NEWEST.run_id}", headers=HTML)
        as_json = await http.get(f"/api/v1/playbook-runs/{NEWEST.run_id}")
    assert page.status_code == 200, page.text
    text = page.text
    assert html.escape(NEWEST.summary(), quote=True).replace("&#x27;", "&#39;") in text
    assert 'href="/remediations/p-ran0001/trail"' in text and 'href="/remediations/p-wait0002/trail"' in text
    assert 'href="/remediations/p-%3Crej%3E0006/trail"' in text  # the id quoted in the path
    assert HOSTILE not in text and "&lt;img src=x" in text
    assert "twinops audit show" not in text  # links, not commands, in the web UI
    # Under the site's CSP: no inline style or script, only this origin's stylesheets.
    assert "<style" not in text and "style=" not in text
    assert re.findall(r"<script[^>]*>", text) == ['<script src="/static/twinops.js" defer>']
    assert '<link rel="stylesheet" href="/static/playbook_report.css">' in text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert f'href="/playbook-runs/{NEWEST.run_id}/report.html"' in text
    assert as_json.status_code == 200 and as_json.json()["run_id"] == NEWEST.run_id  # the session reads the API


async def test_the_report_downloads_as_one_self_contained_file(runs: Web) -> None:
    async with signed_in(runs.app, runs.tokens["vera"]) as (http, _):
        answer = await http.get(f"/playbook-runs/{NEWEST.run_id}/report.html", headers=HTML)
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == f"attachment; filename*=UTF-8''{NEWEST.run_id}.html"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.text.startswith("<!doctype html>") and "<style>" in answer.text and "<script" not in answer.text
    assert 'href="http://testserver/remediations/p-ran0001/trail"' in answer.text  # absolute: opened from a disk


async def test_an_unknown_run_is_a_404_page_naming_it(runs: Web) -> None:
    async with signed_in(runs.app, runs.tokens["vera"]) as (http, _):
        page = await http.get("/playbook-runs/playbook-run-nope", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "unknown playbook run 'playbook-run-nope'" in html.unescape(page.text)


async def test_signed_out_goes_to_sign_in(runs: Web) -> None:
    async with await browser(runs.app) as http:
        for path in ("/playbook-runs", f"/playbook-runs/{NEWEST.run_id}"):
            answer = await http.get(path, headers=HTML)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=/playbook-runs")


async def test_no_runs_yet(web: Web) -> None:
    async with signed_in(web.app, web.tokens["vera"]) as (http, _):
        page = await http.get("/playbook-runs", headers=HTML)
    assert page.status_code == 200 and "No playbook run has been reported yet." in page.text
