"""twin.v1: every validation rule rejects a bad document with an error naming what is wrong."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract import Snapshot, SnapshotError, parse_snapshot, render_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "twin" / "schema" / "twin.v1.json"


def test_valid_document_parses(doc: dict[str, Any]) -> None:
    snap = parse_snapshot(doc)
    assert snap.node("gateway").capacity == 1000.0
    assert snap.node("db").kind == "database"
    assert not snap.node("db").scalable
    assert json.loads(snap.to_json())["schema"] == "twin.v1"


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        target: Any = d
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value

    return mutate


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("duplicate id", _set(["nodes", 1, "id"], "gateway"), "node 'gateway': duplicate id"),
    ("edge to unknown", _set(["edges", 0, "target"], "payments"), "unknown node 'payments'"),
    ("edge from unknown", _set(["edges", 1, "source"], "nowhere"), "unknown node 'nowhere'"),
    ("cycle", lambda d: d["edges"].append({"source": "db", "target": "gateway", "ratio": 0.1}), "cycle"),
    ("self loop", lambda d: d["edges"].append({"source": "db", "target": "db", "ratio": 0.1}), "cycle"),
    ("nan rate", _set(["nodes", 0, "external_arrival_rate"], math.nan), "node 'gateway': external_arrival_rate"),
    ("inf capacity", _set(["nodes", 1, "capacity_per_replica"], math.inf), "node 'checkout': capacity_per_replica"),
    ("nan metric", _set(["nodes", 0, "metrics", "latency_p95_ms"], math.nan), "node 'gateway': metrics.latency_p95_ms"),
    ("negative rate", _set(["nodes", 0, "external_arrival_rate"], -1.0), "node 'gateway': external_arrival_rate"),
    ("negative replicas", _set(["nodes", 1, "replicas"], -2), "node 'checkout': replicas"),
    ("negative ratio", _set(["edges", 0, "ratio"], -0.5), "edge 'gateway'->'checkout': ratio"),
    ("negative metric", _set(["nodes", 0, "metrics", "throughput"], -3.0), "node 'gateway': metrics.throughput"),
    ("min > max", _set(["nodes", 1, "min_replicas"], 11), "node 'checkout': max_replicas 10 < min_replicas 11"),
    ("naive time", _set(["observed_at"], "2026-11-21T22:00:00"), "observed_at"),
    ("unknown schema", _set(["schema"], "twin.v2"), "schema: expected 'twin.v1', got 'twin.v2'"),
    ("unknown kind", _set(["nodes", 2, "kind"], "mainframe"), "node 'db': kind"),
    ("unknown field", _set(["nodes", 0, "colour"], "blue"), "node 'gateway': colour"),
    ("duplicate edge", lambda d: d["edges"].append(dict(d["edges"][0])), "duplicate edge"),
    ("zero capacity", _set(["nodes", 0, "capacity_per_replica"], 0), "node 'gateway': capacity_per_replica"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BAD, ids=[b[0] for b in BAD])
def test_invalid_documents_are_rejected_naming_the_problem(
    doc: dict[str, Any], case: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    mutate(doc)
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(json.dumps(doc, allow_nan=True))
    assert expected in str(info.value), case
    assert str(info.value).count(expected) == 1, f"{case}: named more than once: {info.value}"


def test_not_json_is_rejected() -> None:
    with pytest.raises(SnapshotError, match="not JSON"):
        parse_snapshot("{nope")


def test_schema_file_matches_models() -> None:
    assert SCHEMA_FILE.read_text() == render_json_schema(), "run: twinops twin schema > twin/schema/twin.v1.json"


_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
_rate = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
_ratio = st.floats(min_value=0, max_value=10, allow_nan=False, allow_infinity=False)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """Random valid snapshots: unique ids, edges only from earlier to later nodes (a DAG)."""
    ids = draw(st.lists(_ids, min_size=1, max_size=8, unique=True))
    nodes = []
    for node_id in ids:
        lo = draw(st.integers(0, 5))
        nodes.append(
            {
                "id": node_id,
                "kind": draw(st.sampled_from(["service", "queue", "station", "database", "external"])),
                "replicas": draw(st.integers(0, 50)),
                "capacity_per_replica": draw(st.floats(min_value=0.001, max_value=1e4)),
                "min_replicas": lo,
                "max_replicas": lo + draw(st.integers(0, 40)),
                "external_arrival_rate": draw(_rate),
                "tags": draw(st.dictionaries(_ids, _ids, max_size=2)),
                "metrics": {"throughput": draw(st.none() | _rate), "error_rate": draw(st.none() | st.floats(0, 1))},
            }
        )
    pairs = draw(st.sets(st.tuples(st.integers(0, len(ids) - 1), st.integers(0, len(ids) - 1)), max_size=12))
    edges = [{"source": ids[a], "target": ids[b], "ratio": draw(_ratio)} for a, b in sorted(pairs) if a < b]
    stamp = draw(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.sampled_from(_ZONES))
    )
    return parse_snapshot(
        {"schema": "twin.v1", "twin_id": "t", "observed_at": stamp.isoformat(), "nodes": nodes, "edges": edges}
    )


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_valid_snapshots_round_trip_through_json(snap: Snapshot) -> None:
    again = parse_snapshot(snap.to_json())
    assert again == snap
    assert again.to_json() == snap.to_json()
