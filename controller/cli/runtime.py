"""`twinops up` and `twinops demo`: the embedded stack and the scripted run."""

from __future__ import annotations

import asyncio

import typer

from controller.cli._common import console, fail
from controller.cli.loop import wait_for_shutdown
from controller.errors import RuntimeUnavailableError
from controller.loop import start_agent_loop
from controller.runtime import TemporalRuntime
from controller.settings import load_settings
from controller.worker import Services, running_worker, worker_options


async def _serve_forever() -> None:
    settings = load_settings()
    async with TemporalRuntime(settings) as rt:
        info = rt.info
        assert info is not None
        rt.publish()
        services = Services.from_settings(settings)
        queue = settings.temporal_task_queue
        async with running_worker(rt.client, queue, services, **worker_options(settings)):
            loop_id = await start_agent_loop(rt.client, settings, services)
            console.print(f"Temporal frontend: [bold]{info.address}[/] (namespace {info.namespace})")
            if info.ui_url:
                console.print(f"Temporal UI:       [bold]{info.ui_url}[/]")
            if info.database:
                console.print(f"state:             {info.database}")
            console.print(f"worker:            task queue {queue}")
            console.print(f"agent loop:        {loop_id} (twin {settings.twin_id}, every {settings.tick_seconds:g}s)")
            console.print("watch the queue with `twinops queue`; Ctrl-C stops the stack.")
            await wait_for_shutdown()


def register(app: typer.Typer) -> None:
    """Add `up` and `demo` to the root app."""

    @app.command()
    def up() -> None:
        """Start the embedded stack (Temporal dev server with SQLite under TWINOPS_HOME) and wait."""
        try:
            asyncio.run(_serve_forever())
        except RuntimeUnavailableError as exc:
            fail(str(exc))

    @app.command()
    def demo() -> None:
        """The whole loop, unattended: a fix that verifies, a fix that rolls back, the trails, a verified ledger."""
        from controller.demo import run_demo

        try:
            code = asyncio.run(run_demo(load_settings(), console))
        except RuntimeUnavailableError as exc:
            fail(str(exc))
        raise typer.Exit(code)
