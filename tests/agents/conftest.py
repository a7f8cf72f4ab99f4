"""Builders for small twins used across the agents tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from twin.contract import Snapshot, parse_snapshot

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def node(
    node_id: str,
    replicas: int,
    mu: float,
    ext: float = 0.0,
    lo: int = 1,
    hi: int = 50,
    **extra: Any,
) -> dict[str, Any]:
    """A node document; metrics default to empty (missing)."""
    doc: dict[str, Any] = {
        "id": node_id,
        "replicas": replicas,
        "capacity_per_replica": mu,
        "min_replicas": lo,
        "max_replicas": hi,
        "external_arrival_rate": ext,
    }
    doc.update(extra)
    return doc


def snap(
    nodes: list[dict[str, Any]], edges: Sequence[tuple[str, str, float]] = (), at: float = 0.0, twin: str = "t"
) -> Snapshot:
    """A validated snapshot `at` seconds after T0."""
    return parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": twin,
            "observed_at": (T0 + timedelta(seconds=at)).isoformat(),
            "nodes": nodes,
            "edges": [{"source": s, "target": t, "ratio": r} for s, t, r in edges],
        }
    )


def hidden_downstream() -> Snapshot:
    """gateway -> api (saturated, 120%) -> db (hidden behind api, 110% of its capacity)."""
    return snap(
        [
            node("gateway", 4, 500.0, ext=1200.0),
            node("api", 4, 250.0),
            node("db", 2, 545.4545),
        ],
        [("gateway", "api", 1.0), ("api", "db", 1.0)],
    )


def metrics(arrival: float, throughput: float, utilization: float, **extra: float) -> dict[str, float]:
    """A metrics document."""
    return {"arrival_rate": arrival, "throughput": throughput, "utilization": utilization, **extra}


def ramp(rates: Sequence[float], step: float = 60.0, replicas: int = 10, mu: float = 100.0) -> list[Snapshot]:
    """One entry node `api` whose external load follows `rates`, one snapshot per `step` seconds."""
    return [snap([node("api", replicas, mu, ext=r)], at=i * step) for i, r in enumerate(rates)]
