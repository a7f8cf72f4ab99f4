"""Pre-approving the next playbook run in a real browser: the form by keyboard and labels, its result, axe.

An approver picks a playbook and times by their labels, submits with the keyboard, lands back on
the runs page with the result (post-redirect-get) and the pre-approval listed; a time in the past
is shown beside its field. A viewer on a phone sees the list and no form. axe-core finds no serious
or critical violation in any of these states.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import CHROMIUM, NO_CHROMIUM, Served
from tests.e2e.test_approval_in_browser import PHONE, assert_accessible, person, shoot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)]

PLAYBOOK = "nightly-rightsize"


def at(minutes: float) -> str:
    """Now plus `minutes` as the form takes it (UTC, to the minute)."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


async def test_an_approver_pre_approves_by_keyboard_and_a_viewer_only_reads(chromium: Any, served: Served) -> None:
    alice_ctx, alice, alice_errors = await person(chromium)
    await sign_in(alice, served, "alice", "/playbook-runs")
    form = alice.locator("#preapprove")
    await expect(form.get_by_role("heading", name="Pre-approve the next run")).to_be_visible()
    await assert_accessible(alice, "playbook runs (pre-approve form)")

    # A time in the past: the page answers with the reason beside the field and the form as typed.
    await form.get_by_label("Playbook to pre-approve").select_option(PLAYBOOK)
    await form.get_by_label("Run at (UTC)").fill(at(-60))
    await form.get_by_label("Expires (UTC)").fill(at(60))
    await form.get_by_label("Expires (UTC)").press("Enter")
    error = alice.locator("#pa-run-at-error")
    await expect(error).to_contain_text("is in the past")
    await expect(form.get_by_label("Run at (UTC)")).to_have_attribute("aria-invalid", "true")
    await expect(form.get_by_label("Playbook to pre-approve")).to_have_value(PLAYBOOK)
    await assert_accessible(alice, "playbook runs (a refused pre-approval)")

    await form.get_by_label("Run at (UTC)").fill(at(60))
    await form.get_by_label("Expires (UTC)").fill(at(120))
    await form.get_by_label("Comment (optional; kept in the audit trail)").fill("fine tonight")
    await form.get_by_role("button", name="Pre-approve").focus()
    await alice.keyboard.press("Enter")
    await expect(alice.locator("#preapprove-result")).to_contain_text(f"Pre-approved. The run of {PLAYBOOK} v1 at")
    assert "/playbook-runs?preapproved=pa-" in alice.url  # redirected: a reload does not post again
    row = alice.locator("tr[data-preapproval]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("alice")
    await expect(row).to_contain_text("open")
    await shoot(alice, "preapproved")
    await assert_accessible(alice, "playbook runs (pre-approved)")

    vera_ctx, vera, vera_errors = await person(chromium, PHONE)
    await sign_in(vera, served, "vera", "/playbook-runs")
    await expect(vera.locator("tr[data-preapproval]")).to_have_count(1)
    await expect(vera.locator("#preapprove")).to_have_count(0)
    await assert_accessible(vera, "playbook runs (viewer, phone)")

    # The refused form came back as a 422 page, on purpose; chromium logs every error status it loads.
    refused = "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    assert [e for e in alice_errors if e != refused] == [] and vera_errors == []
    await alice_ctx.close()
    await vera_ctx.close()
