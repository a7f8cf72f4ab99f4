"""Fixtures for twin tests: a small valid document to break in specific ways."""

from __future__ import annotations

import copy
from typing import Any

import pytest

DOC: dict[str, Any] = {
    "schema": "twin.v1",
    "twin_id": "shop",
    "observed_at": "2026-11-21T22:00:00Z",
    "nodes": [
        {
            "id": "gateway",
            "kind": "service",
            "replicas": 4,
            "capacity_per_replica": 250.0,
            "min_replicas": 1,
            "max_replicas": 40,
            "external_arrival_rate": 900.0,
            "tags": {"team": "edge", "tier": "critical"},
            "metrics": {
                "arrival_rate": 900.0,
                "throughput": 900.0,
                "utilization": 0.9,
                "queue_depth": 12.0,
                "latency_p95_ms": 35.0,
                "error_rate": 0.0,
            },
        },
        {"id": "checkout", "replicas": 2, "capacity_per_replica": 200.0, "min_replicas": 1, "max_replicas": 10},
        {"id": "db", "kind": "database", "replicas": 1, "capacity_per_replica": 1000.0},
    ],
    "edges": [
        {"source": "gateway", "target": "checkout", "ratio": 0.4},
        {"source": "checkout", "target": "db", "ratio": 2.0},
    ],
}


@pytest.fixture
def doc() -> dict[str, Any]:
    """A fresh deep copy of a valid twin.v1 document."""
    return copy.deepcopy(DOC)
