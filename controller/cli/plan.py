"""`twinops plan`: the agent's proposal for one snapshot (and its history), as JSON or Rich tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
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
)
from controller.cli._common import console, fail, load_history_file, load_snapshot_file, print_json
from twin.actions import RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import Snapshot

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


def run_agent(snapshot: Snapshot, history: Sequence[Snapshot], desires: Desires) -> Decision:
    """One agent tick on a file snapshot, with no prior state (the history feeds the trends)."""
    older = [s for s in history if s.observed_at < snapshot.observed_at]
    return decide(AgentState(), snapshot, desires, history=older)


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


def _change(a: dict[str, Any]) -> str:
    if a["type"] == "scale":
        return f"{a['from']} -> {a['to']} replicas"
    if a["type"] == "rate_limit":
        return f"admit at most {a['max_rps']:g} rps"
    if a["type"] == "shift_traffic":
        return ", ".join(f"{t} {a['from'][t]:g}->{r:g}" for t, r in a["ratios"].items())
    return str(a["type"])


def _render(result: dict[str, Any]) -> None:
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
    if result["unmet"]:
        console.print("[bold yellow]unmet:[/] " + "; ".join(result["unmet"]), highlight=False)
    console.print(result["rationale"], highlight=False)


@app.command()
def plan(
    snapshot: Annotated[Path, typer.Option("--snapshot", help="twin.v1 snapshot JSON")],
    history: Annotated[Path | None, typer.Option("--history", help="JSON Lines history, oldest first")] = None,
    target_utilization: Annotated[
        float | None, typer.Option(min=0.01, max=1.0, help="default target utilization (overrides --desires)")
    ] = None,
    desires: Annotated[
        Path | None, typer.Option("--desires", help="desires YAML (agents/desires/example.yaml)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Propose the cheapest safe fix: actions, predicted effect, what stays unmet, and why."""
    snap = load_snapshot_file(snapshot)
    decision = run_agent(snap, load_history_file(history), cli_desires(desires, target_utilization))
    result = plan_result(decision, snap)
    if as_json:
        print_json(result)
        return
    _render(result)
