"""A playbook run's self-contained HTML report in a real browser: readable offline, scripts off, asking nothing.

The file is what `twinops report --format html` writes and the web UI downloads: opened from
disk with JavaScript disabled, it shows its summary and every section, the hostile node name as
text, and the browser requests nothing beyond the file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from controller.app.playbook_reports import render_html
from tests.controller.playbook_run_factory import HOSTILE, full_report
from tests.e2e.conftest import ARTIFACTS, CHROMIUM, NO_CHROMIUM

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)]


async def test_the_report_file_shows_its_summary_without_scripts_or_requests(chromium: Any, tmp_path: Path) -> None:
    report = full_report()
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    context = await chromium.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
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
