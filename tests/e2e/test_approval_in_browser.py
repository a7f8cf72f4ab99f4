"""End to end in a real browser: sign in, see the pending proposal, decide, watch the remediation finish.

Two approvers approve in two browser contexts and the first one's page reaches "completed"
without a reload; another proposal is rejected with a comment; a viewer sees no decision
buttons and a POST forged from the viewer's own session is refused. axe-core checks the
queue and proposal pages; screenshots land in tests/e2e/artifacts/ (and, with
TWINOPS_UPDATE_SCREENSHOTS=1, in docs/ for the README).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]  # ships no type hints
from playwright.async_api import BrowserContext, Page, Route, expect

from controller.adapters.audit import SqlAuditLedger
from tests.e2e.conftest import ARTIFACTS, CHROMIUM, NO_CHROMIUM, Served, start_pending
from tests.workflows.conftest import eventually
from workflows import RemediationWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)]

DOCS = Path(__file__).parents[2] / "docs"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")


async def person(chromium: Any, viewport: dict[str, int] = DESKTOP) -> tuple[BrowserContext, Page, list[str]]:
    """A browser context of its own (its own cookies), a page, and the page's script errors as they happen."""
    context: BrowserContext = await chromium.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return context, page, errors


async def sign_in(page: Page, served: Served, user: str, path: str = "/") -> None:
    """Open `path` signed out, get sent to the sign-in page, sign in with the token, land on `path`."""
    await page.goto(served.url + path)
    await expect(page).to_have_url(f"{served.url}/login" + (f"?next={path}" if path != "/" else ""))
    await page.get_by_label("API token").fill(served.tokens[user])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(served.url + path)


async def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation on the page."""
    results = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not bad, f"axe on the {name} page: {bad}"


async def shoot(page: Page, name: str, docs_name: str | None = None, docs_height: int = 1800) -> None:
    """A full-page screenshot into the artifacts; with TWINOPS_UPDATE_SCREENSHOTS=1 the page's top also into docs/."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if docs_name and os.environ.get("TWINOPS_UPDATE_SCREENSHOTS") == "1":
        size = page.viewport_size or DESKTOP
        await page.screenshot(
            path=str(DOCS / docs_name),
            clip={"x": 0, "y": 0, "width": size["width"], "height": docs_height},
            full_page=True,
        )


async def test_two_approvers_approve_and_watch_it_complete_without_reloading(chromium: Any, served: Served) -> None:
    # Quick to the decision: the simulated estate keeps running, and a longer wait means a bigger
    # backlog to drain before the fix verifies. The slow checks (axe, screenshots) are in the next test.
    pending = await start_pending(served)
    proposal_path = f"/proposals/{pending.proposal_id}"
    alice_ctx, alice, alice_errors = await person(chromium)
    bob_ctx, bob, bob_errors = await person(chromium)
    await sign_in(bob, served, "bob", proposal_path)

    await sign_in(alice, served, "alice")
    link = alice.locator(f'a[href="{proposal_path}"]')
    await expect(link).to_be_visible()
    await expect(alice).to_have_title("(1) twinops queue")
    await link.click()
    await expect(alice).to_have_url(served.url + proposal_path)
    await expect(alice.locator("#live-stage")).to_have_text("awaiting approval")

    await alice.get_by_label("Comment (optional)").fill("the graph shows the hidden node; scaling it is right")
    await alice.get_by_role("button", name="Approve").click()
    await expect(alice.locator("#outcome")).to_contain_text("Your approval counted")
    await expect(alice).to_have_url(served.url + proposal_path)  # the script put the page's own address back
    await alice.evaluate("window.__notReloaded = true")

    queue = await bob_ctx.new_page()  # Bob's queue in another tab, left alone from here on
    await queue.goto(served.url + "/")
    await expect(queue).to_have_title("(1) twinops queue")
    await bob.get_by_role("button", name="Approve").click()
    await expect(bob.locator("#outcome")).to_contain_text("quorum met")
    # The queue follows without a reload: nothing waits for a decision any more.
    await expect(queue).to_have_title("twinops queue", timeout=15_000)
    await expect(queue.locator("[data-waiting]")).to_have_text("0")

    # Alice's page follows the remediation on its own: executing, verifying, completed.
    await expect(alice.locator("#live-stage")).to_have_text("completed", timeout=60_000)
    await expect(alice.locator("#live-note")).to_contain_text("Stage is now completed (final).")
    await expect(alice.locator("#decide")).to_be_hidden()
    assert await alice.evaluate("window.__notReloaded") is True
    await shoot(alice, "proposal-completed")

    # The decision trail verifies in the browser: leaf hashes, audit paths, the head's Ed25519 signature.
    # The inbox may say "completed" before the ledger has the event; then a head is signed over all of them.
    ledger = served.stack.services.ledger
    assert isinstance(ledger, SqlAuditLedger)
    await eventually(
        lambda: asyncio.to_thread(ledger.trail_sync, pending.proposal_id), lambda t: t[-1].kind.value == "completed"
    )
    await asyncio.to_thread(ledger.publish_head)
    await alice.get_by_role("link", name="Decision trail and proof").click()
    rows = await alice.locator("tr[data-event]").count()
    await alice.get_by_role("button", name="Verify every event").click()
    summary = alice.locator("#verify-summary")
    await expect(summary).to_have_text(f"All {rows} of {rows} events verified against the signed head.")
    await expect(alice.locator("[data-head-signature]")).to_contain_text("Ed25519 signature verified in this browser")
    await shoot(alice, "trail-verified")

    # An entry altered on its way to the browser no longer hashes to its leaf, and the page says so.
    async def tamper(route: Route) -> None:
        answer = await route.fetch()
        body = (await answer.text()).replace('"comment":"the graph', '"comment":"THE graph')
        await route.fulfill(response=answer, body=body)

    await alice.route("**/api/v1/audit/proofs/**", tamper)
    await alice.get_by_role("button", name="Verify every event").click()
    await expect(summary).to_have_text(f"1 of {rows} events failed verification.")
    await expect(alice.locator("td.verdict.failed")).to_have_text("\u2717 failed: the entry does not hash to its leaf")

    assert alice_errors == [] and bob_errors == []
    await alice_ctx.close()
    await bob_ctx.close()


async def test_reject_with_a_comment_and_a_viewer_cannot_decide(chromium: Any, served: Served) -> None:
    pending = await start_pending(served, watch=True)
    proposal_path = f"/proposals/{pending.proposal_id}"
    vera_ctx, vera, vera_errors = await person(chromium, PHONE)
    alice_ctx, alice, alice_errors = await person(chromium)

    # The approver's view, checked with axe and photographed while the proposal waits.
    await sign_in(alice, served, "alice")
    await expect(alice).to_have_title("(1) twinops queue")
    await expect(alice.locator("#queue-rows tr")).to_have_count(1)
    await shoot(alice, "queue")
    await assert_accessible(alice, "queue")
    await alice.locator(f'a[href="{proposal_path}"]').click()
    await expect(alice.locator("svg.graph")).to_be_visible()
    await expect(alice.locator("svg.spark").first).to_be_visible()
    await shoot(alice, "proposal", "proposal-page.png")
    await assert_accessible(alice, "proposal")

    # A viewer on a phone: everything to read, nothing to decide with.
    await sign_in(vera, served, "vera", proposal_path)
    await expect(vera.locator("#live-stage")).to_have_text("awaiting approval")
    await expect(vera.get_by_role("button", name="Approve")).to_have_count(0)
    await expect(vera.get_by_role("button", name="Reject")).to_have_count(0)
    await shoot(vera, "proposal-phone", "proposal-page-phone.png")
    await assert_accessible(vera, "proposal (phone)")

    # The keyboard reaches the content first thing: the skip link, then main.
    await vera.keyboard.press("Tab")
    await expect(vera.locator(".skip-link")).to_be_focused()
    await vera.keyboard.press("Enter")
    await expect(vera.locator("main")).to_be_focused()

    # A POST forged from the viewer's own session, with its own CSRF token, is still refused.
    csrf = await vera.locator('input[name="csrf_token"]').first.input_value()
    forged = await vera.request.post(served.url + proposal_path + "/approve", form={"csrf_token": csrf, "comment": "x"})
    assert forged.status == 403
    assert "needs the approver role" in await forged.text()
    assert (await pending.handle.query(RemediationWorkflow.state)).approvals == []

    await alice.get_by_label("Reason for rejecting (required)").fill("not during the sale; revisit on Monday")
    await alice.get_by_role("button", name="Reject").click()
    await expect(alice.locator("#outcome")).to_contain_text("you rejected the proposal: not during the sale")
    await expect(alice.locator("#live-stage")).to_have_text("rejected", timeout=20_000)
    # The viewer's page, never reloaded, shows the outcome too.
    await expect(vera.locator("#live-stage")).to_have_text("rejected", timeout=20_000)

    await alice.goto(served.url + "/history")
    await expect(alice.get_by_text("rejected by alice: “not during the sale; revisit on Monday”")).to_be_visible()

    assert vera_errors == [] and alice_errors == []
    await vera_ctx.close()
    await alice_ctx.close()
