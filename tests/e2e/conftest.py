"""A real browser on the real stack: Debian's chromium, driven by Playwright, against uvicorn on a free port.

`served` runs the app with `running_api` on this test's event loop (port 0), over the
workflow tests' `stack` (a worker on a fresh task queue, SQLite stores, regorus, the
simulator), with users vera (viewer), alice and bob (sre approvers in two teams). `chromium`
is one headless browser for the module; each person gets their own browser context (their
own cookies). No browser is ever downloaded: without /usr/bin/chromium the tests skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.client import WorkflowHandle

from agents import AgentState, Proposal, decide
from controller.adapters.live_twin import WallClockSimulatorSource
from controller.api.context import ApiContext
from controller.api.server import running_api
from tests.workflows.conftest import Stack, eventually, scenario, stack  # noqa: F401 - fixtures `served` builds on
from tests.workflows.test_remediation import start, wait_stage
from workflows import RemediationResult, Stage, Timeouts
from workflows.ports import InboxStatus

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Nothing expires while the browser works; verification is quick so an approved run completes fast.
TIMEOUTS = Timeouts(
    approval_seconds=180, expiry_seconds=180, verification_window_seconds=1, verification_settle_seconds=120
)

NO_CHROMIUM = (
    "browser tests need Debian's package chromium at /usr/bin/chromium (apt-get install chromium); none is downloaded"
)


@dataclass
class Served:
    """The running app: where it listens, its context, the stack behind it, the users' tokens."""

    url: str
    ctx: ApiContext
    stack: Stack
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class Pending:
    """A real remediation waiting for approval."""

    handle: WorkflowHandle[Any, RemediationResult]
    proposal_id: str


@pytest_asyncio.fixture
async def served(stack: Stack) -> AsyncIterator[Served]:  # noqa: F811 - the fixture
    """uvicorn serving the app over the stack's stores on a free loopback port."""
    async with running_api(stack.settings, stack.client, host="127.0.0.1", port=0) as running:
        ids = running.context.identities
        tokens = {
            "vera": ids.add_user("vera", "viewer", "edge"),
            "alice": ids.add_user("alice", "approver", "edge", ["sre"]),
            "bob": ids.add_user("bob", "approver", "payments", ["sre"]),
        }
        yield Served(running.url, running.context, stack, tokens)


async def first_proposal(of: Stack, within: float = 10.0) -> Proposal:
    """What the agent proposes once it has seen enough of the estate (right after start it may see too little)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return of.proposal()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def watched_proposal(of: Stack, ticks: int = 6, every: float = 1.0) -> Proposal:
    """What the agent proposes after watching the estate for a few ticks: its trend window has points to draw."""
    source = WallClockSimulatorSource(of.simulator)
    memory = None
    proposal = None
    for tick in range(ticks):
        if tick:
            await asyncio.sleep(every)
        source.advance()
        snapshot = of.simulator.snapshot()
        decision = decide(AgentState(memory=memory), snapshot, of.services.desires, now=datetime.now(UTC))
        memory = decision.new_state.memory  # the window only: each tick proposes afresh
        proposal = decision.proposals[0] if decision.proposals else proposal
    assert proposal is not None, "the agent proposed nothing for this scenario"
    return proposal


async def start_pending(served: Served, *, watch: bool = False) -> Pending:
    """Start a RemediationWorkflow for what the agent proposes; return once the queue shows it pending.

    `watch`: let the agent watch the estate for a few seconds first (richer sparklines, a later decision).
    """
    proposal = await (watched_proposal(served.stack) if watch else first_proposal(served.stack))
    handle = await start(served.stack, proposal, timeouts=TIMEOUTS)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)

    async def status() -> InboxStatus | None:
        try:
            return (await served.ctx.inbox.aget(proposal.id)).status
        except Exception:
            return None

    await eventually(status, lambda s: s is InboxStatus.PENDING)
    return Pending(handle, proposal.id)


@pytest_asyncio.fixture(scope="module")
async def chromium() -> AsyncIterator[Any]:
    """One headless chromium for the module (Playwright's async API: the tests run on pytest-asyncio's loop)."""
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        await asyncio.wait_for(browser.close(), 10)
