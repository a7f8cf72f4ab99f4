"""`twinops worker`: run the workflows and activities on a task queue until stopped.

Temporal and the worker wiring are imported inside the command: `--help` and the other
commands do not pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli._common import console, run_async, settings_of

if TYPE_CHECKING:
    from controller.adapters.metrics import TwinopsMetrics
    from controller.core.settings import Settings

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


@contextlib.contextmanager
def serving_worker_metrics(settings: Settings) -> Iterator[TwinopsMetrics | None]:
    """The worker's metrics, served on `worker_metrics_port` while the block runs; None when the port is unset."""
    if settings.worker_metrics_port is None:
        yield None
        return
    from controller.adapters.metrics import TwinopsMetrics, serve_metrics

    metrics = TwinopsMetrics()
    server = serve_metrics(metrics.registry, settings.worker_metrics_port)
    console.print(f"worker metrics on http://{server.host}:{server.port}/metrics")
    try:
        yield metrics
    finally:
        server.close()


@app.command()
def worker(
    ctx: typer.Context,
    task_queue: Annotated[str | None, typer.Option("--task-queue", help="default from settings")] = None,
) -> None:
    """Run the workflows and activities on a task queue until SIGINT/SIGTERM.

    With TWINOPS_WORKER_METRICS_PORT set it serves twinops' /metrics there; with
    TWINOPS_TEMPORAL_METRICS_PORT, the Temporal SDK's own metrics on that port. It watches the twin
    (TWINOPS_TWIN_WATCH_SECONDS; by default the simulator only) and wakes the twin's loop when it changes.
    """
    from controller.adapters.temporal_server import connect, sdk_metrics_runtime
    from controller.app.agent_loop import agent_loop_id
    from controller.app.twin_watch import watcher_for, watching
    from controller.app.worker import Services, running_worker, worker_options

    settings = settings_of(ctx)

    async def serve() -> None:
        client = await connect(settings, runtime=sdk_metrics_runtime(settings))
        services = Services.from_settings(settings)
        queue = task_queue or settings.temporal_task_queue
        with serving_worker_metrics(settings) as metrics:
            try:
                async with (
                    running_worker(client, queue, services, metrics=metrics, **worker_options(settings)),
                    watching(
                        watcher_for(settings, services.twin, client, agent_loop_id(settings.twin_id), metrics)
                    ) as watcher,
                ):
                    console.print(f"worker on task queue [bold]{queue}[/]; Ctrl-C stops it")
                    if watcher is not None:
                        console.print(
                            f"watching twin {settings.twin_id} every {watcher.interval:g}s: changes wake its loop"
                        )
                    await wait_for_shutdown()
            finally:
                await close_services(services)

    run_async(serve)
