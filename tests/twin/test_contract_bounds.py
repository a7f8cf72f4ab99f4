"""twin.v1 bounds what the arithmetic needs, and hostile bytes end in a SnapshotError, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twin.contract import SnapshotError, parse_snapshot
from twin.history import HistoryError, read_history


def chain(length: int, ratio: float) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "replicas": 1, "capacity_per_replica": 1.0, "external_arrival_rate": 1.0 if i == 0 else 0.0}
        for i in range(length)
    ]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}", "ratio": ratio} for i in range(length - 1)]
    return {"schema": "twin.v1", "twin_id": "c", "observed_at": "2026-11-21T22:00:00Z", "nodes": nodes, "edges": edges}


def _reject(doc: dict[str, Any] | str | bytes, expected: str) -> str:
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(doc if isinstance(doc, str | bytes) else json.dumps(doc))
    assert expected in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["nodes", 1, "capacity_per_replica"], 1e308, "node 'checkout': capacity_per_replica"),
        (["nodes", 1, "capacity_per_replica"], 1e-300, "node 'checkout': capacity_per_replica"),
        (["nodes", 1, "replicas"], 10**400, "node 'checkout': replicas"),
        (["nodes", 1, "max_replicas"], 10**30, "node 'checkout': max_replicas"),
        (["nodes", 0, "external_arrival_rate"], 1e300, "node 'gateway': external_arrival_rate"),
        (["nodes", 0, "metrics", "queue_depth"], 1e300, "node 'gateway': metrics.queue_depth"),
        (["edges", 0, "ratio"], 1e308, "edge 'gateway'->'checkout': ratio"),
    ],
    ids=[
        "capacity 1e308",
        "capacity 1e-300",
        "replicas 10^400",
        "max_replicas 10^30",
        "rate 1e300",
        "queue 1e300",
        "ratio",
    ],
)
def test_numbers_beyond_sane_maxima_are_rejected_naming_the_field(
    doc: dict[str, Any], path: list[Any], value: float, expected: str
) -> None:
    target: Any = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    _reject(doc, expected)


def test_amplification_through_a_long_chain_is_rejected_naming_the_node() -> None:
    message = _reject(chain(1100, 2.0), "traffic amplification")
    assert "node 'n" in message
    # A long chain of ratio 1 amplifies nothing and stays valid; so does a short one of ratio 2.
    parse_snapshot(chain(1100, 1.0))
    parse_snapshot(chain(30, 2.0))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe\x00garbage\x80", "not UTF-8"),
        ('{"tags": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"schema": "twin.v1", "n": ' + "9" * 5000 + "}", "n: Extra inputs are not permitted"),
        ("[1, 2", "not JSON"),
        ("NaN", "a snapshot must be a JSON object"),
    ],
    ids=["binary", "deeply nested", "5000 digits", "truncated", "not an object"],
)
def test_hostile_text_ends_in_a_snapshot_error(raw: str | bytes, expected: str) -> None:
    _reject(raw, expected)


def test_a_5000_digit_number_names_its_field(doc: dict[str, Any]) -> None:
    text = json.dumps(doc).replace('"replicas": 4', '"replicas": ' + "9" * 5000)
    _reject(text, "node 'gateway': replicas: Input should be less than or equal to 1000000")


def test_a_history_with_a_bad_byte_names_its_line(doc: dict[str, Any], tmp_path: Any) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(json.dumps(doc).encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(HistoryError, match=r"line 2: .*not UTF-8"):
        read_history(path)
