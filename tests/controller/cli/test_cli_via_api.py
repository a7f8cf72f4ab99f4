"""queue, show, approve, reject and cancel through the HTTP API (TWINOPS_API_URL + TWINOPS_TOKEN) print what the
direct path prints.

The real app is served by uvicorn on a free loopback port (`controller.api.server.running_api`) over a live
stack: the dev server, a worker, SQLite stores, regorus. The CLI runs in process (Typer's CliRunner) in a
worker thread, so the server keeps answering on the test's event loop while the command waits; the direct
path, run the same way, opens its own Temporal connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError
from typer.testing import CliRunner, Result

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.server import running_api
from controller.cli import app
from tests.workflows.conftest import Stack, eventually, stage_of
from tests.workflows.test_cli_loop import started, users
from workflows import Stage

pytestmark = pytest.mark.integration


@dataclass
class Cli:
    """Runs `twinops` in process against the stack, directly or through the API at `api_url`."""

    stack: Stack
    temporal_address: str
    api_url: str
    tokens: dict[str, str]

    async def __call__(self, *args: str, user: str | None = None, api: bool = True, **env: str | None) -> Result:
        variables: dict[str, str | None] = {
            "TWINOPS_HOME": str(self.stack.settings.home),
            "TWINOPS_TEMPORAL_ADDRESS": self.temporal_address,
            "TWINOPS_DATABASE_URL": None,
            "TWINOPS_API_URL": self.api_url if api else None,
            "TWINOPS_TOKEN": self.tokens[user] if user else None,
            "COLUMNS": "200",
            **env,
        }
        return await asyncio.to_thread(lambda: CliRunner().invoke(app, list(args), env=variables, terminal_width=200))


@pytest_asyncio.fixture
async def cli(stack: Stack, temporal: TemporalRuntime) -> AsyncIterator[Cli]:
    """The API served over the stack's stores, users alice and bob (sre approvers) and victor (viewer)."""
    assert temporal.info is not None
    tokens = users(stack)
    async with running_api(stack.settings, temporal.client, host="127.0.0.1", port=0) as api:
        yield Cli(stack, temporal.info.address, api.url, tokens)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == "", "nothing on stderr"
    return result.stdout


def refused(result: Result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: "), line
    return line


async def test_queue_show_approve_and_cancel_through_the_api(cli: Cli) -> None:
    handle, proposal_id = await started(cli.stack, verification_seconds=600)
    await eventually(lambda: cli("queue", "--json", api=False), lambda r: proposal_id in r.stdout)
    short = proposal_id[:10]
    for args in (["queue"], ["queue", "--json"], ["queue", "--all"], ["show", short], ["show", short, "--json"]):
        direct = ok(await cli(*args, user="victor", api=False))
        via_api = ok(await cli(*args, user="victor"))
        assert via_api == direct, f"twinops {' '.join(args)} differs through the API"
    assert proposal_id[:10] in direct and "awaiting_approval" in direct

    first = ok(await cli("approve", short, "--comment", "looks right", user="alice"))
    assert first.startswith(f"approval counted for proposal {proposal_id} (1 so far)"), first
    assert "already approved" in refused(await cli("approve", short, user="alice"))
    assert "needs the approver role" in refused(await cli("approve", short, user="victor"))
    second = ok(await cli("approve", short, user="bob"))
    assert second.strip() == f"approved proposal {proposal_id}: quorum met, execution starts"
    approved = [r for r in await cli.stack.services.ledger.trail(proposal_id) if r.kind.value == "approved"]
    assert [(r.actor, r.payload["comment"]) for r in approved] == [("user:alice", "looks right"), ("user:bob", "")]

    await eventually(lambda: stage_of(handle), lambda s: s == "verifying")
    cancelled = ok(await cli("cancel", short, "--reason", "sale started", user="alice"))
    assert (
        cancelled.strip() == f"cancellation requested for {proposal_id}: sale started (executed steps are compensated)"
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    cancels = [r for r in await cli.stack.services.ledger.trail(proposal_id) if r.kind.value == "cancelled"]
    assert [(r.actor, r.payload["reason"]) for r in cancels] == [("user:alice", "sale started")]


async def test_reject_and_errors_through_the_api(cli: Cli) -> None:
    handle, proposal_id = await started(cli.stack)
    rejected = ok(await cli("reject", proposal_id[:10], "--reason", "change freeze", user="alice"))
    assert rejected.strip() == f"rejected proposal {proposal_id}: change freeze"
    assert (await handle.result()).stage == Stage.REJECTED
    late = refused(await cli("approve", proposal_id, user="bob"))
    assert late == f"error: proposal {proposal_id!r} is rejected: it can no longer be approved"
    assert "--reason" in refused(await cli("reject", proposal_id, "--reason", " ", user="alice"))

    assert refused(await cli("show", "p-nope", user="victor")) == "error: unknown proposal 'p-nope'"
    assert refused(await cli("queue", TWINOPS_TOKEN="tw_garbage")) == "error: unknown API token"
    no_token = refused(await cli("queue"))
    assert "set TWINOPS_TOKEN" in no_token and "TWINOPS_API_URL" in no_token
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    unreachable = refused(await cli("queue", user="victor", TWINOPS_API_URL=down))
    assert unreachable.startswith(f"error: twinops API at {down} (TWINOPS_API_URL): cannot connect")
