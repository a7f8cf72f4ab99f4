"""The twin's state as a Rich table, shown by `twinops twin` and by the demo."""

from __future__ import annotations

from rich.table import Table

from twin.contract import Snapshot
from twin.graph import snapshot_flow

__all__ = ["state_table"]


def state_table(snap: Snapshot, title: str | None = None) -> Table:
    """The twin's state as a Rich table: replicas, demand, observed metrics, demand utilization."""
    flow = snapshot_flow(snap)
    table = Table(title=title or f"{snap.twin_id} @ {snap.observed_at.isoformat()}", title_justify="left")
    for col in (
        "node",
        "kind",
        "replicas",
        "demand rps",
        "throughput",
        "util (obs)",
        "util (demand)",
        "queue",
        "p95 ms",
    ):
        table.add_column(col, justify="left" if col in ("node", "kind") else "right")
    for node in snap.nodes:
        rho = flow.utilization(node.id)
        m = node.metrics
        style = "bold red" if rho >= 1 else "yellow" if rho >= 0.8 else ""
        table.add_row(
            node.id,
            node.kind.value,
            f"{node.replicas}",
            f"{flow.demand[node.id]:.0f}",
            "-" if m.throughput is None else f"{m.throughput:.0f}",
            "-" if m.utilization is None else f"{m.utilization:.2f}",
            f"{rho:.2f}",
            "-" if m.queue_depth is None else f"{m.queue_depth:.0f}",
            "-" if m.latency_p95_ms is None else f"{m.latency_p95_ms:.0f}",
            style=style,
        )
    return table
