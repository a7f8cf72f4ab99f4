"""`twinops up` and `twinops demo`: the embedded stack and the scripted run.

Every `up` option overrides one TWINOPS_* variable (named in its help); unset, the
variable or the default applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli._common import console, fail, invocation, settings_of

if TYPE_CHECKING:
    from controller.core.settings import Settings

app = typer.Typer(add_completion=False)

# option name -> the Settings field it overrides
UP_OPTIONS: dict[str, str] = {
    "scenario": "twin_scenario",
    "twin_id": "twin_id",
    "tick": "tick_seconds",
    "temporal_port": "temporal_port",
    "ui_port": "temporal_ui_port",
    "ui": "temporal_ui",
    "log_file": "log_file",
    "api_host": "api_host",
    "api_port": "api_port",
}


def up_settings(**options: Any) -> Settings:
    """Settings from the environment, with the `up` options given on the command line on top."""
    from controller.core.settings import Settings

    overrides = {UP_OPTIONS[name]: value for name, value in options.items() if value is not None}
    return Settings(**overrides)


async def _serve_forever(settings: Settings, log_file: Path, *, api: bool = True) -> None:
    from controller.adapters.metrics import TwinopsMetrics
    from controller.adapters.notifiers import ConsoleNotifier, FanoutNotifier
    from controller.adapters.temporal_server import TemporalRuntime
    from controller.app.agent_loop import start_agent_loop
    from controller.app.twin_watch import watcher_for, watching
    from controller.app.worker import Services, running_worker, worker_options
    from controller.cli.worker import close_services, wait_for_shutdown

    # Temporal first: when it cannot be had, nothing else (policy engine processes) is started.
    # The dev server inherits our stdout/stderr; point them at its own log while it is spawned,
    # so its banner and logs stay off the console.
    with _output_of_children_to(settings.home / "temporal-server.log"):
        await (rt := TemporalRuntime(settings)).start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(rt.stop)
        info = rt.info
        assert info is not None
        services = Services.from_settings(settings)
        # Notifications as sentences on the console; the log file keeps them as events.
        services.notifier = FanoutNotifier([services.notifier, ConsoleNotifier(_say)])
        try:
            rt.publish()
            queue = settings.temporal_task_queue
            metrics = TwinopsMetrics()
            async with running_worker(rt.client, queue, services, metrics=metrics, **worker_options(settings)):
                loop_id = await start_agent_loop(rt.client, settings, services)
                watcher = watcher_for(settings, services.twin, rt.client, loop_id, metrics)
                await stack.enter_async_context(watching(watcher))
                console.print(f"Temporal frontend: [bold]{info.address}[/] (namespace {info.namespace})")
                if info.ui_url:
                    console.print(f"Temporal UI:       [bold]{info.ui_url}[/]")
                if api:
                    from controller.api.server import running_api

                    served = await stack.enter_async_context(running_api(settings, rt.client, metrics=metrics))
                    console.print(f"twinops web UI:    [bold]{served.url}/login[/] (API {served.url}/api/v1)")
                if info.database:
                    console.print(f"state:             {info.database}")
                console.print(f"log:               {log_file}", soft_wrap=True)
                console.print(f"Temporal's log:    {settings.home / 'temporal-server.log'}", soft_wrap=True)
                console.print(f"worker:            task queue {queue}")
                woken = f", and when the twin changes (read every {watcher.interval:g}s)" if watcher else ""
                console.print(
                    f"agent loop:        {loop_id} (twin {settings.twin_id}, every {settings.tick_seconds:g}s{woken})"
                )
                console.print("watch the queue with `twinops queue`; Ctrl-C stops the stack.")
                await wait_for_shutdown()
        finally:
            await close_services(services)


@contextlib.contextmanager
def _output_of_children_to(path: Path) -> Iterator[None]:
    """Processes started inside this block write their stdout and stderr to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def up(
    ctx: typer.Context,
    scenario: Annotated[
        Path | None,
        typer.Option("--scenario", help="simulator scenario YAML (TWINOPS_TWIN_SCENARIO)", exists=True),
    ] = None,
    twin_id: Annotated[str | None, typer.Option("--twin-id", help="twin the loop watches (TWINOPS_TWIN_ID)")] = None,
    tick: Annotated[
        float | None, typer.Option("--tick", help="seconds between agent ticks (TWINOPS_TICK_SECONDS)", min=0.001)
    ] = None,
    temporal_port: Annotated[
        int | None,
        typer.Option("--temporal-port", help="Temporal frontend port (TWINOPS_TEMPORAL_PORT; default: a free one)"),
    ] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(
            "--ui-port", help="Temporal UI port (TWINOPS_TEMPORAL_UI_PORT; default: last one used, else 8233)"
        ),
    ] = None,
    ui: Annotated[bool | None, typer.Option("--ui/--no-ui", help="serve the Temporal UI (TWINOPS_TEMPORAL_UI)")] = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="JSON Lines log (TWINOPS_LOG_FILE; default: TWINOPS_HOME/twinops.log)"),
    ] = None,
    api_host: Annotated[str | None, typer.Option("--api-host", help="web UI/API address (TWINOPS_API_HOST)")] = None,
    api_port: Annotated[
        int | None, typer.Option("--api-port", help="web UI/API port (TWINOPS_API_PORT; 0: any free one)")
    ] = None,
    api: Annotated[bool, typer.Option("--api/--no-api", help="serve the web UI and API beside the worker")] = True,
) -> None:
    """Start the embedded stack (Temporal dev server with SQLite under TWINOPS_HOME), the web UI and API, and wait."""
    from controller.adapters.telemetry import configure_logging

    settings = up_settings(
        scenario=scenario,
        twin_id=twin_id,
        tick=tick,
        temporal_port=temporal_port,
        ui_port=ui_port,
        ui=ui,
        log_file=log_file,
        api_host=api_host,
        api_port=api_port,
    )
    path = settings.log_file or settings.home / "twinops.log"
    configure_logging(settings, verbose=invocation(ctx).verbose, log_file=path, file_only={"notification"})
    asyncio.run(_serve_forever(settings, path, api=api))


@app.command()
def demo(
    ctx: typer.Context,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="afterwards keep the stack and the web UI running with one proposal waiting for you (Ctrl-C stops)",
        ),
    ] = False,
    prometheus: Annotated[
        bool,
        typer.Option(
            "--prometheus",
            help="run the first scenario through a real Prometheus scraping the simulator, its actions through the "
            "signed webhook (needs the Debian package prometheus)",
        ),
    ] = False,
) -> None:
    """The whole loop, unattended: a fix that verifies, a fix that rolls back, the trails, a verified ledger."""
    from controller.app.demo import run_demo
    from controller.core.errors import ConfigurationError, RuntimeUnavailableError

    if serve and prometheus:
        fail("--serve and --prometheus do not combine: the proposal left for you is on the in-process simulator")
    try:
        code = asyncio.run(
            run_demo(settings_of(ctx), console, then=_serve_demo if serve else None, prometheus=prometheus)
        )
    except (ConfigurationError, RuntimeUnavailableError) as exc:
        fail(str(exc))
    raise typer.Exit(code)


async def _serve_demo(client: Any, settings: Settings, tokens: dict[str, str]) -> None:
    """`demo --serve`: a proposal waiting in the web UI, the address and the demo approvers' tokens."""
    from controller.api.server import running_api
    from controller.app.demo import parked_proposal
    from controller.cli.worker import wait_for_shutdown

    async with parked_proposal(console, client, settings) as entry, running_api(settings, client) as api:
        console.rule("approve it in your browser")
        console.print(f"web UI:   [bold]{api.url}/login[/]   (API {api.url}/api/v1, OpenAPI {api.url}/docs)")
        console.print(f"proposal: [bold]{api.url}/proposals/{entry.proposal_id}[/]")
        console.print(
            f"the policy asks for {entry.required_approvals or 2} approvals from group sre; sign in with one token, "
            "approve, sign out, and sign in with the other:",
            highlight=False,
        )
        for name, token in list(tokens.items())[:2]:
            console.print(f"  demo-{name}: {token}", highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the stack.")
        await wait_for_shutdown()
