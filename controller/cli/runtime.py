"""`twinops up` and `twinops demo`: the embedded stack and the scripted run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from controller.cli._common import console, fail, print_json
from controller.cli.detect import reference_findings
from controller.cli.loop import wait_for_shutdown
from controller.errors import RuntimeUnavailableError
from controller.loop import start_agent_loop
from controller.runtime import TemporalRuntime
from controller.settings import REPO_ROOT, load_settings
from controller.worker import Services, build_worker

DEMO_SCENARIO = REPO_ROOT / "twin" / "scenarios" / "hidden_downstream.yaml"


async def _serve_forever() -> None:
    settings = load_settings()
    async with TemporalRuntime(settings) as rt:
        info = rt.info
        assert info is not None
        rt.publish()
        services = Services.from_settings(settings)
        queue = settings.temporal_task_queue
        async with build_worker(rt.client, queue, services):
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
    def demo(
        scenario: Annotated[Path, typer.Option("--scenario", help="scenario YAML")] = DEMO_SCENARIO,
        ticks: Annotated[int, typer.Option("--ticks", min=1)] = 6,
        tick_seconds: Annotated[float, typer.Option("--tick-seconds", min=1)] = 15,
    ) -> None:
        """Run the simulator on a bundled scenario, show the estate each tick, then what `detect` finds."""
        from controller.cli.twin import state_table
        from twin.scenario import load_scenario
        from twin.simulator import Simulator

        settings = load_settings()
        try:
            sim = Simulator(load_scenario(scenario))
        except (OSError, ValueError) as exc:
            fail(f"{scenario}: {exc}")
        console.rule(f"simulating {scenario.name}")
        for tick in range(ticks):
            sim.run(tick_seconds)
            console.print(state_table(sim.snapshot(), title=f"tick {tick + 1}: t={sim.elapsed:.0f}s"))
        console.rule("twinops detect --json")
        print_json(reference_findings(sim.snapshot(), settings.target_utilization))
