"""`twinops twin ...`: validate documents, run the simulator, take a snapshot, ask what-if questions, serve metrics.

A scenario is a path to a YAML file or the name of one in `twin/scenarios/` (`hidden_downstream`).
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from controller.app.twin_table import state_table
from controller.cli._common import console, fail, load_history_file, load_snapshot_file, print_json, settings_of
from controller.core.settings import REPO_ROOT
from twin.actions import Action, describe
from twin.contract import render_json_schema
from twin.history import write_history
from twin.scenario import load_scenario
from twin.simulator import Simulator, what_if

app = typer.Typer(no_args_is_help=True, help="The digital twin: contract, simulator, what-if.")

_ACTION = TypeAdapter[Action](Action)
SCENARIOS = REPO_ROOT / "twin" / "scenarios"
_SCENARIO_HELP = "scenario YAML, or a name from twin/scenarios (e.g. hidden_downstream)"


def scenario_path(value: str) -> Path:
    """A scenario file from a path or a name in twin/scenarios; a one-line error listing the names if neither."""
    given = Path(value)
    if given.is_file():
        return given
    for candidate in (SCENARIOS / value, SCENARIOS / f"{value}.yaml"):
        if candidate.is_file() and candidate.parent == SCENARIOS:
            return candidate
    names = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
    fail(f"scenario {value!r}: no such file, and not a scenario name (known: {names})")


def parse_action(text: str) -> Action:
    """Parse `scale NODE N`, `rate_limit NODE RPS|none`, `restart NODE`, `shift_traffic SRC T=R [T=R ...]`."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty action")
    verb, args = words[0].replace("-", "_"), words[1:]
    try:
        match verb, args:
            case "scale", [node, replicas]:
                return _ACTION.validate_python({"type": "scale", "node": node, "replicas": int(replicas)})
            case "rate_limit", [node, rps]:
                limit = None if rps.lower() == "none" else float(rps)
                return _ACTION.validate_python({"type": "rate_limit", "node": node, "max_rps": limit})
            case "restart", [node]:
                return _ACTION.validate_python({"type": "restart", "node": node})
            case "shift_traffic", [source, *pairs] if pairs:
                ratios = {t: float(r) for t, r in (p.split("=", 1) for p in pairs)}
                return _ACTION.validate_python({"type": "shift_traffic", "source": source, "ratios": ratios})
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"action {text!r}: {exc}") from exc
    raise ValueError(
        f"action {text!r}: expected 'scale NODE N', 'rate_limit NODE RPS|none', 'restart NODE' "
        "or 'shift_traffic SOURCE TARGET=RATIO ...'"
    )


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="snapshot .json or history .jsonl")]) -> None:
    """Validate a twin.v1 snapshot or history; exit 0, or 2 with an error naming the field."""
    if file.suffix == ".jsonl":
        snaps = load_history_file(file)
        console.print(f"{file}: valid twin.v1 history, {len(snaps)} snapshots")
    else:
        snap = load_snapshot_file(file)
        console.print(f"{file}: valid twin.v1 snapshot of {snap.twin_id!r}, {len(snap.nodes)} nodes")


@app.command()
def schema() -> None:
    """Print the twin.v1 JSON Schema."""
    typer.echo(render_json_schema(), nl=False)


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help=_SCENARIO_HELP)],
    seconds: Annotated[float, typer.Option("--seconds", min=1)] = 600,
    out: Annotated[Path, typer.Option("--out", help="history .jsonl to write")] = Path("history.jsonl"),
    every: Annotated[float, typer.Option("--every", min=0.1, help="seconds between recorded snapshots")] = 15,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
) -> None:
    """Run a scenario and write its history as JSON Lines."""
    path = scenario_path(scenario)
    try:
        sim = Simulator(load_scenario(path), seed=seed)
    except (OSError, ValueError) as exc:
        fail(f"{scenario}: {exc}")
    snaps = sim.run(seconds, record_every=every)
    count = write_history(out, snaps)
    console.print(f"wrote {count} snapshots to {out}")


@app.command()
def whatif(
    scenario: Annotated[str, typer.Argument(help=_SCENARIO_HELP)],
    at: Annotated[float, typer.Option("--at", min=0, help="seconds into the scenario to apply the actions")] = 0,
    action: Annotated[list[str], typer.Option("--action", help="e.g. 'scale gateway 8' (repeatable)")] = [],  # noqa: B006 - Typer reads list defaults
    seconds: Annotated[float, typer.Option("--seconds", min=1, help="how far to look ahead")] = 300,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fork the simulator at --at, apply the actions, and show the predicted state after --seconds."""
    path = scenario_path(scenario)
    try:
        actions = [parse_action(a) for a in action]
        sim = Simulator(load_scenario(path))
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if at:
        sim.run(at)
    before = sim.snapshot()
    try:
        predicted = what_if(sim, actions, seconds)
    except ValueError as exc:
        fail(str(exc))
    after = predicted[-1]
    if as_json:
        print_json(
            {
                "actions": [a.model_dump() for a in actions],
                "before": before.model_dump(mode="json"),
                "after": after.model_dump(mode="json"),
            }
        )
        return
    console.print(state_table(before, title=f"now (t={at:g}s)"))
    console.print("actions: " + (", ".join(describe(a) for a in actions) or "none"))
    console.print(state_table(after, title=f"predicted after {seconds:g}s"))


@app.command()
def snapshot(
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Argument(help=_SCENARIO_HELP + "; none: the configured twin source")] = None,
    at: Annotated[float, typer.Option("--at", min=0, help="seconds into the scenario")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="the twin.v1 document")] = False,
) -> None:
    """Take one snapshot: from a scenario's simulator at --at, or from the configured twin source."""
    if scenario is not None:
        path = scenario_path(scenario)
        try:
            sim = Simulator(load_scenario(path))
        except (OSError, ValueError) as exc:
            fail(f"{path}: {exc}")
        if at:
            sim.run(at)
        snap = sim.snapshot()
        where = f"{path.stem} at t={at:g}s"
    else:
        if at:
            fail("--at needs a scenario: the configured twin source gives its latest snapshot")
        from controller.app.worker import make_twin_source
        from twin.sources import TwinSourceError

        settings = settings_of(ctx)
        try:
            snap = asyncio.run(make_twin_source(settings).latest())
        except TwinSourceError as exc:
            fail(f"twin source {settings.twin_source!r}: {exc}")
        where = f"the {settings.twin_source} twin source"
    if as_json:
        typer.echo(snap.model_dump_json(indent=2, exclude_none=False))
        return
    console.print(state_table(snap, title=f"{snap.twin_id} from {where}, observed {snap.observed_at.isoformat()}"))


@app.command("serve-metrics")
def serve_metrics(
    scenario: Annotated[str, typer.Argument(help=_SCENARIO_HELP)],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free port")] = 9108,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    actuator_secret: Annotated[
        str | None,
        typer.Option(
            "--actuator-secret",
            envvar="TWINOPS_ACTUATOR_SECRET",
            show_envvar=True,
            help="HMAC secret POST /actions requests are signed with; none: actions are refused",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
) -> None:
    """Run a scenario in wall-clock time as an estate: Prometheus /metrics, /snapshot, signed POST /actions."""
    from controller.adapters.sim_exporter import SimulatorExporter

    path = scenario_path(scenario)
    try:
        exporter = SimulatorExporter.from_file(path, seed=seed, secret=actuator_secret, host=host, port=port)
    except (OSError, ValueError) as exc:
        fail(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
    try:
        exporter.start()
    except OSError as exc:
        fail(f"{host}:{port}: cannot listen there ({exc.strerror or exc})")
    # SIGTERM stops as Ctrl-C does: the server closes before the process ends.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        typer.echo(f"serving {path.stem} ({exporter.simulator.scenario.twin_id}) at {exporter.url}")
        typer.echo(f"  {exporter.url}/metrics  {exporter.url}/snapshot  {exporter.url}/actions  {exporter.url}/healthz")
        if not actuator_secret:
            typer.echo("  POST /actions refuses every request: no --actuator-secret or TWINOPS_ACTUATOR_SECRET")
        typer.echo("Ctrl-C stops")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        exporter.stop()
        signal.signal(signal.SIGTERM, previous)
    typer.echo("stopped")
