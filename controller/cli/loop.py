"""`twinops worker | queue | approve | reject | cancel | show`: run and steer the closed loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from controller.approvals import ApprovalRefusedError, ApprovalService
from controller.cli._common import console, fail, print_json
from controller.db import create_engine, migrate
from controller.errors import TwinopsError
from controller.identity import Identities
from controller.inbox import SqlApprovalInbox
from controller.runtime import connect
from controller.settings import Settings, load_settings
from controller.worker import Services, running_worker, worker_options
from workflows import ApprovalResult
from workflows.ports import InboxEntry

T = TypeVar("T")


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await coro_factory()

    try:
        return asyncio.run(runner())
    except TwinopsError as exc:
        fail(str(exc))


def _token(settings: Settings) -> str:
    if settings.token is None:
        fail("set TWINOPS_TOKEN to your API token (an admin creates one with `twinops users add`)")
    return settings.token.get_secret_value()


def _stores(settings: Settings) -> tuple[SqlApprovalInbox, Identities]:
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    return SqlApprovalInbox(engine), Identities(engine)


async def _service(settings: Settings) -> ApprovalService:
    inbox, identities = _stores(settings)
    return ApprovalService(await connect(settings), inbox, identities)


async def wait_for_shutdown() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _print_result(result: ApprovalResult) -> None:
    if result.quorum_met:
        console.print("[green]quorum met[/]: execution starts")
    elif result.counted:
        console.print(f"approval counted; {result.still_needed} more needed")
    else:
        console.print("[yellow]not counted[/]")
    for reason in result.reasons:
        console.print(f"  - {reason}")


def queue_table(entries: list[InboxEntry]) -> Table:
    """The approval queue as a table."""
    table = Table(title="approval queue", title_justify="left")
    for col in ("proposal", "status", "risk", "target", "approvals", "deadline", "summary"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            e.proposal_id,
            e.status.value,
            e.risk,
            e.target,
            f"{len(e.approvals)}/{e.required_approvals}",
            e.deadline.isoformat(timespec="seconds") if e.deadline else "-",
            e.summary[:120],
        )
    return table


def register(app: typer.Typer) -> None:
    """Add the loop commands to the root app."""

    @app.command()
    def worker(
        task_queue: Annotated[str | None, typer.Option("--task-queue", help="default from settings")] = None,
    ) -> None:
        """Run the workflows and activities on a task queue until SIGINT/SIGTERM."""
        settings = load_settings()

        async def serve() -> None:
            client = await connect(settings)
            services = Services.from_settings(settings)
            queue = task_queue or settings.temporal_task_queue
            async with running_worker(client, queue, services, **worker_options(settings)):
                console.print(f"worker on task queue [bold]{queue}[/]; Ctrl-C stops it")
                await wait_for_shutdown()

        _run(serve)

    @app.command()
    def queue(
        all_: Annotated[bool, typer.Option("--all", help="include closed proposals")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """List proposals waiting for approval (or every proposal with --all)."""
        settings = load_settings()
        inbox, _ = _stores(settings)
        entries = inbox.list(include_closed=all_)
        if as_json:
            print_json([e.model_dump(mode="json") for e in entries])
        else:
            console.print(queue_table(entries))

    @app.command()
    def approve(
        proposal: Annotated[str, typer.Argument(help="proposal id (a unique prefix is enough)")],
        comment: Annotated[str, typer.Option("--comment")] = "",
    ) -> None:
        """Approve a proposal as the user of TWINOPS_TOKEN."""
        settings = load_settings()
        token = _token(settings)

        async def go() -> ApprovalResult:
            return await (await _service(settings)).approve(token, proposal, comment)

        try:
            _print_result(_run(go))
        except ApprovalRefusedError as exc:
            fail(str(exc))

    @app.command()
    def reject(
        proposal: Annotated[str, typer.Argument(help="proposal id (a unique prefix is enough)")],
        reason: Annotated[str, typer.Option("--reason", help="why (recorded in the audit trail)")],
    ) -> None:
        """Reject a proposal as the user of TWINOPS_TOKEN."""
        settings = load_settings()
        token = _token(settings)

        async def go() -> ApprovalResult:
            return await (await _service(settings)).reject(token, proposal, reason)

        _print_result(_run(go))

    @app.command()
    def cancel(proposal: Annotated[str, typer.Argument(help="proposal id (a unique prefix is enough)")]) -> None:
        """Cancel a remediation; steps already executed are compensated."""
        settings = load_settings()
        token = _token(settings)

        async def go() -> InboxEntry:
            return await (await _service(settings)).cancel(token, proposal)

        entry = _run(go)
        console.print(f"cancellation requested for {entry.proposal_id}")

    @app.command()
    def show(
        proposal: Annotated[str, typer.Argument(help="proposal id (a unique prefix is enough)")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Live state of a remediation: stage, approvals, steps done, deadline."""
        settings = load_settings()
        token = _token(settings)

        async def go() -> Any:
            return await (await _service(settings)).state(token, proposal)

        state = _run(go)
        if as_json:
            print_json(state.model_dump(mode="json"))
            return
        console.print(f"{state.proposal_id}: [bold]{state.stage.value}[/] risk={state.risk}")
        console.print(f"approvals {state.approvals} of {state.required_approvals}; deadline {state.deadline}")
        for step in state.steps_done:
            console.print(f"  step {step.index}: {step.action.model_dump()} applied={step.applied}")
