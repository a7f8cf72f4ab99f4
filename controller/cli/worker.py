"""`twinops worker`: run the workflows and activities on a task queue until stopped.

Temporal and the worker wiring are imported inside the command: `--help` and the other
commands do not pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer

from controller.cli._common import console, run_async, settings_of

app = typer.Typer(add_completion=False)


async def wait_for_shutdown() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def close_services(services: Any) -> None:
    """Stop what the services started (the policy engine's processes) before the process leaves."""
    close = getattr(services.gate, "aclose", None)
    if close is not None:
        await close()


@app.command()
def worker(
    ctx: typer.Context,
    task_queue: Annotated[str | None, typer.Option("--task-queue", help="default from settings")] = None,
) -> None:
    """Run the workflows and activities on a task queue until SIGINT/SIGTERM."""
    from controller.adapters.temporal_server import connect
    from controller.app.worker import Services, running_worker, worker_options

    settings = settings_of(ctx)

    async def serve() -> None:
        client = await connect(settings)
        services = Services.from_settings(settings)
        queue = task_queue or settings.temporal_task_queue
        try:
            async with running_worker(client, queue, services, **worker_options(settings)):
                console.print(f"worker on task queue [bold]{queue}[/]; Ctrl-C stops it")
                await wait_for_shutdown()
        finally:
            await close_services(services)

    run_async(serve)
