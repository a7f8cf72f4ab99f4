"""`twinops detect`: the agent's findings and the constraint of one snapshot (and its history)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agents import Beliefs, Desires, Detection, FindingKind, revise
from agents import detect as detect_findings
from controller.cli._common import console, load_history_file, load_snapshot_file, print_json
from controller.cli.plan import cli_desires, with_target
from twin.contract import Snapshot

app = typer.Typer(add_completion=False)


def detection_json(detection: Detection, snapshot: Snapshot) -> dict[str, Any]:
    """The `detect --json` document: `{"constraint", "findings": [{"node", "kind", ...}]}`."""
    # One index, not a scan of the nodes per finding: 50,000 nodes took 80 s that way.
    nodes = {n.id: n for n in snapshot.nodes}
    findings = []
    for f in detection.findings:
        node = nodes.get(f.node) if f.node is not None else None
        findings.append(
            {
                "node": f.node,
                "kind": f.kind.value,
                "demand_utilization": None if f.demand_utilization is None else round(f.demand_utilization, 4),
                "eta_seconds": None if f.eta_seconds is None else round(f.eta_seconds, 1),
                "target_utilization": f.target_utilization,
                "observed_utilization": node.metrics.utilization if node is not None else None,
                "hidden": f.hidden,
                "message": f.message,
                "evidence": [e.statement for e in f.evidence],
                "confidence": round(f.confidence, 4),
            }
        )
    return {"constraint": detection.constraint, "findings": findings}


def run_detection(
    snapshot: Snapshot, target: float | None = None, history: Sequence[Snapshot] = (), desires: Desires | None = None
) -> tuple[Beliefs, Detection]:
    """Beliefs from the snapshot and its history, and the agent's findings on them."""
    desires = desires or Desires()
    if target is not None and target != desires.target_utilization:
        desires = with_target(desires, target)
    older = [s for s in history if s.observed_at < snapshot.observed_at]
    beliefs = revise(None, snapshot, older, desires=desires)
    return beliefs, detect_findings(beliefs, desires)


def reference_findings(
    snapshot: Snapshot, target: float | None = None, history: Sequence[Snapshot] = (), desires: Desires | None = None
) -> dict[str, Any]:
    """Findings and the constraint of a snapshot, by the agent (beliefs from the history, then detection)."""
    _, detection = run_detection(snapshot, target, history, desires)
    return detection_json(detection, snapshot)


def _render(snap: Snapshot, beliefs: Beliefs, detection: Detection, result: dict[str, Any], desires: Desires) -> None:
    problems = [f for f in detection.findings if f.kind is not FindingKind.DATA_QUALITY]
    if result["findings"]:
        table = Table(title=escape(f"twin {snap.twin_id} at {snap.observed_at.isoformat()}"))
        for col in ("node", "kind", "demand util", "observed util", "eta", "why"):
            table.add_column(col)
        for f in result["findings"]:
            rho = f["demand_utilization"]
            eta = f["eta_seconds"]
            table.add_row(
                escape(str(f["node"])),
                f["kind"],
                "" if rho is None else f"{rho:.2f}",
                "" if f["observed_utilization"] is None else f"{f['observed_utilization']:.2f}",
                "" if eta is None else f"{eta / 60:.0f} min",
                escape(f["message"]),
            )
        console.print(table)
    tightest = beliefs.nodes.get(detection.constraint) if detection.constraint is not None else None
    where = (
        "no node carries load"
        if tightest is None
        else f"{escape(tightest.node)} at {tightest.demand_utilization:.0%} of capacity "
        f"(target {desires.target_for(snap.node(tightest.node)):.0%})"
    )
    if problems:
        console.print(f"constraint: [bold]{where}[/]", highlight=False)
        return
    if detection.findings:
        console.print("No capacity or latency problem found, but the data has problems (above).", highlight=False)
    else:
        console.print(
            escape(f"twin {snap.twin_id} at {snap.observed_at.isoformat()}: healthy")
            + ": no node saturated, over its target or predicted to cross it.",
            highlight=False,
        )
    console.print(f"tightest node: {where}", highlight=False)


@app.command()
def detect(
    snapshot: Annotated[Path, typer.Option("--snapshot", help="twin.v1 snapshot JSON")],
    history: Annotated[Path | None, typer.Option("--history", help="JSON Lines history, oldest first")] = None,
    target_utilization: Annotated[float | None, typer.Option(min=0.01, max=1.0)] = None,
    desires: Annotated[Path | None, typer.Option("--desires", help="desires YAML")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Find saturated, at-risk and predicted nodes (and latency / data problems); name the constraint."""
    snap = load_snapshot_file(snapshot)
    wanted = cli_desires(desires, target_utilization)
    beliefs, detection = run_detection(snap, None, load_history_file(history), wanted)
    result = detection_json(detection, snap)
    if as_json:
        print_json(result)
        return
    _render(snap, beliefs, detection, result, wanted)
