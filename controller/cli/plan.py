"""`twinops plan`: the agent's proposal for one snapshot (and its history), as JSON or Rich tables.

With `--forecast` (the default) the agent forecasts demand as the worker's does: from the
`--history` file when it spans at least a day (each snapshot's offered demand per node, as
beliefs compute it), else from the controller database's stored demand history of the twin
when a database is configured. The forecast each proposal was planned from is shown with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agents import (
    AgentState,
    Decision,
    Desires,
    DesiresError,
    FindingKind,
    Proposal,
    decide,
    load_desires,
    revise,
)
from agents.forecast import DAY, DemandHistory, DemandRecorder
from controller.app.forecast_words import forecast_json, forecast_line
from controller.cli._common import (
    console,
    err_console,
    fail,
    load_history_file,
    load_snapshot_file,
    one_line,
    print_json,
    settings_of,
)
from twin.actions import RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot

if TYPE_CHECKING:
    from controller.core.settings import Settings

app = typer.Typer(add_completion=False)


def cli_desires(path: Path | None, target_utilization: float | None) -> Desires:
    """Desires from `--desires FILE` (or defaults), with `--target-utilization` overriding the default target.

    The hysteresis band moves down with a low target so the override alone stays valid.
    """
    try:
        desires = load_desires(path.read_text(encoding="utf-8") if path is not None else None)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except DesiresError as exc:
        fail(f"{path}: {exc}")
    if target_utilization is None:
        return desires
    try:
        return with_target(desires, target_utilization)
    except ValueError as exc:
        fail(f"--target-utilization {target_utilization}: {exc}")


def with_target(desires: Desires, target: float) -> Desires:
    """`desires` with another default target, moving the hysteresis band down if needed."""
    update: dict[str, Any] = {"target_utilization": target}
    if desires.scale_down_to >= target:
        update |= {"scale_down_to": target * 0.8, "scale_down_below": target * 0.6}
    return Desires.model_validate(desires.model_dump() | update)


def run_agent(
    snapshot: Snapshot,
    history: Sequence[Snapshot],
    desires: Desires,
    demand_history: DemandHistory | None = None,
) -> Decision:
    """One agent tick on a file snapshot, with no prior state (the history feeds the trends, the
    demand history the forecasts)."""
    older = [s for s in history if s.observed_at < snapshot.observed_at]
    return decide(AgentState(), snapshot, desires, history=older, demand_history=demand_history)


def demand_of_history(snapshot: Snapshot, history: Sequence[Snapshot]) -> DemandHistory | None:
    """The demand history in the snapshots before `snapshot`, when they reach back at least a day (else None).

    Each snapshot's offered demand per node is what beliefs compute from it alone, through the
    graph; as the worker records it, only trusted beliefs count (a guess would become a season).
    """
    older = [s for s in history if s.observed_at < snapshot.observed_at]
    if not older or snapshot.observed_at - min(s.observed_at for s in older) < timedelta(seconds=DAY):
        return None
    recorder = DemandRecorder()
    for s in sorted(older, key=lambda s: s.observed_at):
        beliefs = revise(None, s)
        recorder.record(s.observed_at, {n: b.demand for n, b in beliefs.nodes.items() if b.trusted})
    return recorder.history()


def stored_demand_history(settings: Settings, snapshot: Snapshot) -> DemandHistory | None:
    """The twin's demand history in the controller database, when one is configured; None when none is.

    A database counts as configured when TWINOPS_DATABASE_URL is set or the default SQLite file
    under home exists (a plan never creates one). A failed read is one line on stderr and no history.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from controller.adapters.demand_history import SqlDemandHistory
    from controller.core.db import create_engine
    from controller.core.errors import TwinopsError

    try:
        url = settings.resolved_database_url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or parsed.database == ":memory:" or not Path(parsed.database).is_file():
                return None
            engine = create_engine(url)
        else:
            # An unreachable server must not hold the plan up for minutes.
            engine = create_engine(url, connect_args={"connect_timeout": 5})
        try:
            store = SqlDemandHistory(
                engine,
                bucket_seconds=settings.demand_bucket_seconds,
                retention_seconds=settings.demand_retention_seconds,
            )
            return store.read_sync(snapshot.twin_id, snapshot.observed_at)
        finally:
            engine.dispose()
    except (SQLAlchemyError, TwinopsError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _note(f"forecasting without the stored demand history: {reason}")
        return None


def _note(message: str) -> None:
    err_console.print(f"[bold]note:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def action_json(
    action: ScaleAction | ShiftTrafficAction | RateLimitAction | RestartAction, snapshot: Snapshot
) -> dict[str, Any]:
    """One action in the CLI's JSON shape (`scale` carries from/to)."""
    match action:
        case ScaleAction(node=n, replicas=r):
            return {"type": "scale", "node": n, "from": snapshot.node(n).replicas, "to": r}
        case ShiftTrafficAction(source=s, ratios=ratios):
            before = {e.target: e.ratio for e in snapshot.edges if e.source == s}
            return {"type": "shift_traffic", "source": s, "from": {t: before[t] for t in ratios}, "ratios": ratios}
        case RateLimitAction(node=n, max_rps=m):
            return {"type": "rate_limit", "node": n, "max_rps": m}
        case RestartAction(node=n):
            return {"type": "restart", "node": n}
    raise AssertionError(action)


def _proposal_json(p: Proposal, snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": p.id,
        "target": p.target,
        "intent": p.intent,
        "plan": p.plan.name,
        "plan_hash": p.plan_hash,
        "actions": [action_json(a, snapshot) for a in p.actions],
        "cost_per_hour": round(p.plan.cost_per_hour, 4),
        "blast_radius": round(p.blast_radius, 4),
        "unmet": list(p.unmet),
        "rationale": p.rationale,
        "forecast": forecast_json(next((b.forecast for b in p.beliefs_used if b.node == p.target), None)),
        "alternatives": [
            {
                "plan": a.option.name,
                "summary": a.option.summary,
                "cost_per_hour": round(a.option.cost_per_hour, 4),
                "unmet": list(a.option.unmet),
                "lost_because": a.lost_because,
            }
            for a in p.alternatives
        ],
    }


def _doubt(decision: Decision) -> tuple[list[dict[str, Any]], str]:
    """Nodes whose beliefs are too unsure to act on, and a sentence saying what was not done because of them."""
    beliefs = decision.beliefs
    unsure = [beliefs.nodes[n] for n in beliefs.order if not beliefs.nodes[n].trusted]
    if not unsure:
        return [], ""
    listed = [{"node": b.node, "confidence": round(b.confidence, 4)} for b in unsure]
    names = ", ".join(b.node for b in unsure[:5]) + (f" and {len(unsure) - 5} more" if len(unsure) > 5 else "")
    problems = decision.detection.of_kind(FindingKind.DATA_QUALITY)
    flagged = decision.detection.capacity_nodes()
    unconfirmed = [
        f"{b.node} at {b.demand_utilization:.0%} of capacity (estimated)" for b in unsure if b.node in flagged
    ]
    text = (
        f"No action on {names}: what is believed about them rests on missing or contradictory data "
        f"(lowest confidence {min(b.confidence for b in unsure):.2f}), so nothing that depends on it is proposed, "
        "no scale-down above all."
    )
    if unconfirmed:
        text += " Unconfirmed: " + ", ".join(unconfirmed[:3]) + "."
    if problems:
        text += " Data: " + "; ".join(f.message for f in problems[:2]) + (" ..." if len(problems) > 2 else "")
    return listed, text


def plan_result(decision: Decision, snapshot: Snapshot) -> dict[str, Any]:
    """The `plan --json` document: remediation actions of every group merged, plus each proposal in full."""
    fixes = [p for p in decision.proposals if p.intent == "remediate"]
    unsure, doubt = _doubt(decision)
    rationale = " ".join([*(p.rationale for p in fixes), doubt]).strip()
    predicted: dict[str, Any] = {}
    for p in fixes:
        for n, o in p.plan.predicted.items():
            predicted[n] = {
                "replicas_before": o.replicas_before,
                "replicas_after": o.replicas_after,
                "utilization_before": round(o.utilization_before, 4),
                "utilization_after": round(o.utilization_after, 4),
                "target_utilization": o.target_utilization,
                "demand_rps": round(o.demand_rps, 3),
                "shed_rps": round(o.shed_rps, 3),
            }
    return {
        "twin_id": decision.beliefs.twin_id,
        "observed_at": decision.beliefs.observed_at.isoformat(),
        "constraint": decision.detection.constraint,
        "actions": [action_json(a, snapshot) for p in fixes for a in p.actions],
        "predicted": predicted,
        "unmet": [u for p in fixes for u in p.unmet],
        "rationale": rationale or "No capacity problem found; nothing to do.",
        "low_confidence": unsure,
        "cost_per_hour": round(sum(p.plan.cost_per_hour for p in fixes), 4),
        "proposals": [_proposal_json(p, snapshot) for p in fixes],
        "scale_down": [_proposal_json(p, snapshot) for p in decision.proposals if p.intent == "scale_down"],
    }


def forecasts_shown(decision: Decision) -> list[tuple[str, dict[str, Any]]]:
    """(node, forecast JSON) for each remediation's target and the other nodes its plan affects that have one."""
    shown: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for p in decision.proposals:
        if p.intent != "remediate":
            continue
        for node in (p.target, *p.plan.predicted):
            belief = decision.beliefs.nodes.get(node)
            if node in seen or belief is None or belief.forecast is None:
                continue
            seen.add(node)
            shown.append((node, forecast_json(belief.forecast) or {}))
    return shown


def _change(a: dict[str, Any]) -> str:
    if a["type"] == "scale":
        return f"{a['from']} -> {a['to']} replicas"
    if a["type"] == "rate_limit":
        return f"admit at most {a['max_rps']:g} rps"
    if a["type"] == "shift_traffic":
        return ", ".join(f"{t} {a['from'][t]:g}->{r:g}" for t, r in a["ratios"].items())
    return str(a["type"])


def _render(result: dict[str, Any], forecasts: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
    actions = Table(title=f"plan for twin {result['twin_id']} at {result['observed_at']}")
    for col in ("action", "node", "change"):
        actions.add_column(col)
    for a in result["actions"]:
        target = a.get("node") or a.get("source")
        change = _change(a)
        actions.add_row(a["type"], target, change)
    console.print(actions)
    predicted = Table(title="predicted per affected node")
    for col in ("node", "replicas", "utilization", "target"):
        predicted.add_column(col)
    for n, o in result["predicted"].items():
        predicted.add_row(
            n,
            f"{o['replicas_before']} -> {o['replicas_after']}",
            f"{o['utilization_before']:.0%} -> {o['utilization_after']:.0%}",
            f"{o['target_utilization']:.0%}",
        )
    console.print(predicted)
    for p in result["proposals"]:
        if p["alternatives"]:
            alts = Table(title=f"alternatives for {p['target']}")
            for col in ("plan", "cost/h", "why it lost"):
                alts.add_column(col)
            for a in p["alternatives"]:
                alts.add_row(a["plan"], f"{a['cost_per_hour']:+.1f}", a["lost_because"])
            console.print(alts)
    for node, f in forecasts:
        console.print(f"[bold]forecast[/] {escape(node)}: {escape(forecast_line(f))}", highlight=False, soft_wrap=True)
    if result["unmet"]:
        console.print("[bold yellow]unmet:[/] " + "; ".join(result["unmet"]), highlight=False)
    console.print(result["rationale"], highlight=False)


@app.command()
def plan(
    ctx: typer.Context,
    snapshot: Annotated[Path, typer.Option("--snapshot", help="twin.v1 snapshot JSON")],
    history: Annotated[Path | None, typer.Option("--history", help="JSON Lines history, oldest first")] = None,
    target_utilization: Annotated[
        float | None, typer.Option(min=0.01, max=1.0, help="default target utilization (overrides --desires)")
    ] = None,
    desires: Annotated[
        Path | None, typer.Option("--desires", help="desires YAML (agents/desires/example.yaml)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    forecast: Annotated[
        bool,
        typer.Option(
            "--forecast/--no-forecast",
            help="forecast demand from --history when it spans a day, else from the database's stored history",
        ),
    ] = True,
) -> None:
    """Propose the cheapest safe fix: actions, predicted effect, what stays unmet, and why."""
    snap = load_snapshot_file(snapshot)
    older = load_history_file(history)
    wanted = cli_desires(desires, target_utilization)
    demand: DemandHistory | None = None
    if forecast:
        demand = demand_of_history(snap, older)
        if demand is None:
            demand = _stored(ctx, snap)
    decision = run_agent(snap, older, wanted, demand)
    result = plan_result(decision, snap)
    if as_json:
        print_json(result)
        return
    _render(result, forecasts_shown(decision))


def _stored(ctx: typer.Context, snapshot: Snapshot) -> DemandHistory | None:
    """The stored demand history, or None (with a note) when the settings cannot be read."""
    from controller.core.errors import TwinopsError

    try:
        settings = settings_of(ctx)
    except (TwinopsError, ValueError) as exc:
        _note(f"forecasting without the stored demand history: the settings are invalid: {exc}")
        return None
    return stored_demand_history(settings, snapshot)
