"""`twinops detect`: findings and the constraint of one snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from controller.cli._common import console, load_history_file, load_snapshot_file, print_json
from twin.contract import Snapshot
from twin.graph import DEFAULT_TARGET_UTILIZATION, snapshot_flow


def reference_findings(snapshot: Snapshot, target: float) -> dict[str, Any]:
    """Saturated / at-risk nodes and the constraint, by the reference semantics."""
    flow = snapshot_flow(snapshot)
    findings: list[dict[str, Any]] = []
    constraint: str | None = None
    best = -1.0
    for node in snapshot.nodes:
        rho = flow.utilization(node.id)
        if rho > best:
            best, constraint = rho, node.id
        kind = "saturated" if rho >= 1.0 else "at_risk" if rho >= target else None
        if kind:
            findings.append(
                {
                    "node": node.id,
                    "kind": kind,
                    "demand_utilization": round(rho, 4),
                    "observed_utilization": node.metrics.utilization,
                    "demand": round(flow.demand[node.id], 3),
                    "capacity": round(flow.capacity[node.id], 3),
                    "eta_seconds": None,
                }
            )
    findings.sort(key=lambda f: -float(f["demand_utilization"]))
    return {"constraint": constraint if best > 0 else None, "findings": findings}


def register(app: typer.Typer) -> None:
    """Add the `detect` command to the root app."""

    @app.command()
    def detect(
        snapshot: Annotated[Path, typer.Option("--snapshot", help="twin.v1 snapshot JSON")],
        history: Annotated[Path | None, typer.Option("--history", help="JSON Lines history, oldest first")] = None,
        target_utilization: Annotated[float, typer.Option(min=0.01, max=1.0)] = DEFAULT_TARGET_UTILIZATION,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Find saturated and at-risk nodes and name the constraint."""
        snap = load_snapshot_file(snapshot)
        load_history_file(history)
        result = reference_findings(snap, target_utilization)
        if as_json:
            print_json(result)
            return
        table = Table(title=f"twin {snap.twin_id} at {snap.observed_at.isoformat()}")
        for col in ("node", "kind", "demand util", "observed util"):
            table.add_column(col)
        for f in result["findings"]:
            table.add_row(f["node"], f["kind"], f"{f['demand_utilization']:.2f}", str(f["observed_utilization"]))
        console.print(table)
        console.print(f"constraint: [bold]{result['constraint']}[/]")
