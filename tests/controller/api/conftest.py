"""A real API in front of a real stack: the dev server, a worker, SQLite stores, regorus, the simulator.

`api` builds `ApiContext.open(settings, client=...)` over a stack like the workflow tests'
(same database, same approval key), adds users with `Identities` (a viewer, two `sre`
approvers in different teams, an admin) and talks to `create_app(...)` in process through
`httpx.ASGITransport`. One stack serves a whole test module (building a worker costs seconds):
`pending` starts a real RemediationWorkflow for what the agent proposes and rejects it after
the test, so the next test's run of the same proposal starts from a closed inbox entry. A test
that lets a plan execute changes the estate, so it builds its own stack (`running_stack`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import WorkflowFailureError, WorkflowHandle

from agents import Proposal
from agents.forecast import DemandOutlook
from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.app.approval_service import ApprovalRefusedError
from controller.app.worker import Services, build_worker
from controller.core.errors import NotFoundError
from controller.core.settings import Settings
from controller.testing import RecordingNotifier
from tests.workflows.conftest import Stack, eventually, make_simulator, policies_without_freezes
from tests.workflows.test_remediation import start, wait_stage
from workflows import RemediationResult, Stage, Timeouts
from workflows.ports import InboxEntry, InboxStatus

pytestmark = pytest.mark.integration

# Long enough that nothing expires while a test works; verification quick so approved runs complete fast.
TIMEOUTS = Timeouts(
    approval_seconds=120, expiry_seconds=120, verification_window_seconds=1, verification_settle_seconds=30
)
PROBLEM_JSON = "application/problem+json"
_WAITING = (InboxStatus.PENDING, InboxStatus.ESCALATED)


@dataclass
class Api:
    """The app under test, its context, the stack behind it and the users' tokens."""

    stack: Stack
    ctx: ApiContext
    app: FastAPI
    http: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str | None, headers: dict[str, str] | None = None) -> dict[str, str]:
        """`headers` plus the Authorization header of `user` (none for None)."""
        return {**(headers or {}), **({"Authorization": f"Bearer {self.tokens[user]}"} if user else {})}

    async def get(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        """GET `path` as `user` (anonymous when None)."""
        return await self.http.get(path, headers=self.auth(user, kwargs.pop("headers", None)), **kwargs)

    async def post(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST `path` as `user` (anonymous when None)."""
        return await self.http.post(path, headers=self.auth(user, kwargs.pop("headers", None)), **kwargs)

    async def delete(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        """DELETE `path` as `user` (anonymous when None)."""
        return await self.http.delete(path, headers=self.auth(user, kwargs.pop("headers", None)), **kwargs)

    async def entry(self, proposal_id: str) -> InboxEntry:
        """The proposal's inbox row as it is now."""
        return await self.ctx.inbox.aget(proposal_id)

    async def row(self, proposal_id: str) -> InboxEntry | None:
        """The proposal's inbox row, None while it has none (the workflow writes it through an activity)."""
        try:
            return await self.entry(proposal_id)
        except NotFoundError:
            return None

    async def status(self, proposal_id: str) -> InboxStatus | None:
        """The proposal's inbox status, None while it has no row."""
        found = await self.row(proposal_id)
        return found.status if found else None


@dataclass
class Pending:
    """A remediation waiting for approval: its workflow and its proposal id."""

    handle: WorkflowHandle[Any, RemediationResult]
    proposal_id: str
    target: str


def with_forecast(proposal: Proposal) -> tuple[Proposal, DemandOutlook]:
    """`proposal` with a seasonal forecast on its target's belief, as the agent leaves it when it has one."""
    at = proposal.observed_at
    target = next(b for b in proposal.beliefs_used if b.node == proposal.target)
    outlook = DemandOutlook(
        method="seasonal_daily",
        days_of_history=7.0,
        band=0.06,
        window_seconds=420.0,
        current_rps=target.demand,
        peak_rps=1840.0,
        peak_upper_rps=1950.4,
        peak_at=at + timedelta(minutes=5),
        planning_rps=1950.4,
        crossing_at=at + timedelta(minutes=2),
    )
    beliefs = tuple(
        b.model_copy(update={"forecast": outlook}) if b.node == proposal.target else b for b in proposal.beliefs_used
    )
    return proposal.model_copy(update={"beliefs_used": beliefs}), outlook


@asynccontextmanager
async def running_stack(
    temporal: TemporalRuntime, home: Path, scenario: str = "hidden_downstream.yaml"
) -> AsyncIterator[Stack]:
    """What the workflow tests' `stack` fixture builds: a worker on a fresh task queue over fresh stores."""
    settings = Settings(home=home, policies_dir=policies_without_freezes(home / "policies"), audit_head_every_events=5)
    simulator = make_simulator(scenario)
    services = Services.from_settings(settings, simulator=simulator)
    notifier = RecordingNotifier()
    services.notifier = notifier
    queue = f"test-{uuid.uuid4()}"
    worker = build_worker(temporal.client, queue, services)
    async with worker:
        yield Stack(temporal.client, queue, settings, services, simulator, notifier, worker)


@asynccontextmanager
async def serving(stack: Stack) -> AsyncIterator[Api]:
    """The app over the stack's stores, with users vera (viewer), alice and bob (sre approvers), ada (admin)."""
    ctx = await ApiContext.open(stack.settings, client=stack.client)
    ids = ctx.identities
    tokens = {
        "vera": ids.add_user("vera", "viewer", "edge", ["sre"]),
        "alice": ids.add_user("alice", "approver", "edge", ["sre"]),
        "bob": ids.add_user("bob", "approver", "payments", ["sre"]),
        "ada": ids.add_user("ada", "admin", "platform", ["sre"]),
    }
    app = create_app(stack.settings, context=ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield Api(stack, ctx, app, http, tokens)
    await ctx.close()


@pytest_asyncio.fixture(scope="module")
async def api(temporal: TemporalRuntime, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The app over one stack for the whole module."""
    async with running_stack(temporal, tmp_path_factory.mktemp("api")) as stack, serving(stack) as served:
        yield served


async def start_pending(api: Api, timeouts: Timeouts = TIMEOUTS, proposal: Proposal | None = None) -> Pending:
    """Start a real remediation for `proposal` (default: what the agent proposes now); return once the inbox
    shows it pending."""
    proposal = proposal or api.stack.proposal()
    handle = await start(api.stack, proposal, timeouts=timeouts)
    await wait_stage(handle, Stage.AWAITING_APPROVAL)
    # The inbox row is written by an activity: it shows this run once its workflow id is the row's.
    await eventually(lambda: api.row(proposal.id), lambda e: e is not None and e.workflow_id == handle.id)
    await eventually(lambda: api.status(proposal.id), lambda s: s is InboxStatus.PENDING)
    return Pending(handle, proposal.id, proposal.target)


async def close(api: Api, found: Pending) -> None:
    """Reject a run a test left waiting (through the approval service) and wait until it has ended."""
    entry = await api.entry(found.proposal_id)
    if entry.workflow_id == found.handle.id and entry.status in (InboxStatus.PENDING, InboxStatus.ESCALATED):
        admin = await api.ctx.approvals.principal_of(api.tokens["ada"])
        with contextlib.suppress(ApprovalRefusedError):  # it moved on meanwhile: nothing to reject
            await api.ctx.approvals.reject(admin, found.proposal_id, "test over")
    with contextlib.suppress(WorkflowFailureError):  # a cancelled run fails
        await found.handle.result()
    await eventually(lambda: api.entry(found.proposal_id), lambda e: e.status not in _WAITING)


@pytest_asyncio.fixture
async def pending(api: Api) -> AsyncIterator[Pending]:
    """A remediation waiting for approval; rejected after the test if still open."""
    found = await start_pending(api)
    yield found
    await close(api, found)
