"""A playbook run's report in a real browser: the file readable offline, both it and the site's page fit a phone.

The file is what `twinops report --format html` writes and the web UI downloads: opened from
disk with JavaScript disabled, it shows its summary and every section, the hostile node name as
text, and the browser requests nothing beyond the file itself. At 390 px (a phone) the file and
the site's page show each node as a card: no element is wider than the screen, so no figure or
trail command hides off to the side; axe-core finds nothing serious at either width. With
TWINOPS_UPDATE_SCREENSHOTS=1 the run of one node ran and one waiting lands in docs/ too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]  # ships no type hints
from playwright.async_api import Locator, Page, expect

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.server import running_api
from controller.app.playbook_reports import render_html
from controller.core.settings import Settings
from tests.controller.playbook_run_factory import HOSTILE, full_report, ran_and_waiting_report
from tests.e2e.conftest import ARTIFACTS, CHROMIUM, NO_CHROMIUM

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)]

DOCS = Path(__file__).parents[2] / "docs"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")

# Every element whose box reaches past the viewport's right or left edge (the page scrolls sideways, or a
# scrolling table hides it), as "tag.class [left..right]". Elements that are not rendered have no box.
_TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      found.push(`${el.tagName.toLowerCase()}.${el.className} [${Math.round(box.left)}..${Math.round(box.right)}]`);
    }
  }
  return found;
}"""


async def too_wide(page: Page) -> list[str]:
    """The elements wider than the viewport, or out of it sideways; the page's own width is one of them."""
    found: list[str] = await page.evaluate(_TOO_WIDE)
    scroll = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return found + ([f"the page scrolls sideways by {scroll} px"] if scroll > 0 else [])


async def across(element: Locator) -> tuple[bool, bool]:
    """Whether the element's left and right edges are both within the viewport's width (scrolled to, if below)."""
    box = await element.bounding_box()
    assert box is not None, f"{element} has no box"
    width = await element.page.evaluate("document.documentElement.clientWidth")
    return box["x"] >= 0, box["x"] + box["width"] <= width


async def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation on the page."""
    results = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not bad, f"axe on the {name}: {bad}"


async def test_the_report_file_shows_its_summary_without_scripts_or_requests(chromium: Any, tmp_path: Path) -> None:
    report = full_report()
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    context = await chromium.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    try:
        await page.goto(path.as_uri())
        summary = page.locator("#run-summary")
        await expect(summary).to_be_visible()
        await expect(summary).to_have_text(report.summary())
        for title in ("Ran", "Waiting for approval", "Blocked by policy", "Rolled back / failed", "Not acted on"):
            await expect(page.get_by_role("heading", name=title)).to_be_visible()
        await expect(page.get_by_text(HOSTILE, exact=True)).to_be_visible()  # the markup is text
        assert await page.locator("img").count() == 0 and await page.locator("script").count() == 0
        await expect(page.locator('tr[data-node="ledger"] .col-figures')).to_have_text("no data")
        await page.screenshot(path=str(ARTIFACTS / "playbook-report.png"), full_page=True)
    finally:
        await context.close()
    assert requested == [path.as_uri()]
    assert dialogs == []


async def test_on_a_phone_the_report_file_is_cards_no_wider_than_the_screen(chromium: Any, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(full_report()), encoding="utf-8")
    context = await chromium.new_context(viewport=PHONE)  # scripts on for axe; the page has none of its own
    page = await context.new_page()
    try:
        await page.goto(path.as_uri())
        assert await too_wide(page) == []
        ran = page.locator('tr[data-node="checkout"]')
        await expect(ran.locator("thead")).to_have_count(1)  # the figures table inside keeps its head
        await expect(page.locator("table.nodes > thead").first).to_be_hidden()  # each cell names its column
        assert await across(ran.locator(".col-trail code.command")) == (True, True)
        await expect(ran.locator(".col-trail code.command")).to_have_text("twinops audit show p-ran0001")
        label = await ran.locator(".col-figures").evaluate("cell => getComputedStyle(cell, '::before').content")
        assert label == '"Before → after"'
        await page.screenshot(path=str(ARTIFACTS / "playbook-report-every-outcome-phone.png"), full_page=True)
        await assert_accessible(page, "report file (phone)")
        await page.set_viewport_size(DESKTOP)
        await expect(page.locator("table.nodes > thead").first).to_be_visible()  # desktop: tables as before
        await assert_accessible(page, "report file")
    finally:
        await context.close()


async def test_on_a_phone_the_sites_report_page_is_no_wider_than_the_screen(
    chromium: Any, temporal: TemporalRuntime, tmp_path: Path
) -> None:
    report = full_report()
    async with running_api(Settings(home=tmp_path), temporal.client, host="127.0.0.1", port=0) as running:
        token = running.context.identities.add_user("vera", "viewer", "edge")
        await running.context.playbook_runs().save(report)
        context = await chromium.new_context(viewport=PHONE)
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        try:
            await page.goto(f"{running.url}/login?next=/playbook-runs/{report.run_id}")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{running.url}/playbook-runs/{report.run_id}")
            await expect(page.locator("#run-summary")).to_have_text(report.summary())
            assert await too_wide(page) == []
            assert await across(page.locator('tr[data-node="checkout"] .col-trail a')) == (True, True)
            await page.screenshot(path=str(ARTIFACTS / "playbook-run-page-phone.png"), full_page=True)
            await assert_accessible(page, "playbook run page (phone)")
        finally:
            await context.close()
    assert errors == []  # the CSP refused nothing: no inline style, no script of the report's


@pytest.mark.parametrize(
    ("viewport", "docs_name"), [(DESKTOP, "playbook-report.png"), (PHONE, "playbook-report-phone.png")]
)
async def test_a_run_with_one_node_ran_and_one_waiting(
    chromium: Any, tmp_path: Path, viewport: dict[str, int], docs_name: str
) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(ran_and_waiting_report()), encoding="utf-8")
    context = await chromium.new_context(java_script_enabled=False, viewport=viewport)
    page = await context.new_page()
    try:
        await page.goto(path.as_uri())
        await expect(page.locator('tr[data-node="web"] .col-summary')).to_have_text(
            "waits in the SRE queue for 2 approvals from sre"
        )
        await expect(page.locator(".facts-list")).to_contain_text("no pre-approval covers this run of trim-nightly")
        assert await too_wide(page) == []
        await page.screenshot(path=str(ARTIFACTS / f"ran-and-waiting-{docs_name}"), full_page=True)
        if os.environ.get("TWINOPS_UPDATE_SCREENSHOTS") == "1":
            await page.screenshot(path=str(DOCS / docs_name), full_page=True)
    finally:
        await context.close()
