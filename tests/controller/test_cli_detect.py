"""`twinops detect`, `plan` and `twin validate` on healthy, hostile and random input.

Every input ends in a result (exit 0) or a one-line error naming the field (exit 2), never a
traceback; a healthy twin reads as healthy.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from controller.cli import app
from tests.twin.conftest import DOC

runner = CliRunner()

HEALTHY: dict[str, Any] = {
    "schema": "twin.v1",
    "twin_id": "shop",
    "observed_at": "2026-11-21T22:00:00Z",
    "nodes": [
        {
            "id": "gateway",
            "replicas": 4,
            "capacity_per_replica": 250.0,
            "max_replicas": 40,
            "external_arrival_rate": 500.0,
            "metrics": {"arrival_rate": 500.0, "throughput": 500.0, "utilization": 0.5},
        },
        {
            "id": "api",
            "replicas": 2,
            "capacity_per_replica": 200.0,
            "max_replicas": 10,
            "metrics": {"arrival_rate": 200.0, "throughput": 200.0, "utilization": 0.5},
        },
    ],
    "edges": [{"source": "gateway", "target": "api", "ratio": 0.4}],
}


def _write(tmp_path: Path, content: str | bytes | dict[str, Any], name: str = "s.json") -> Path:
    path = tmp_path / name
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def _commands(path: Path) -> list[list[str]]:
    return [
        ["twin", "validate", str(path)],
        ["detect", "--snapshot", str(path)],
        ["detect", "--snapshot", str(path), "--json"],
        ["plan", "--snapshot", str(path), "--json"],
    ]


def _assert_clean(result: Result, args: list[str]) -> None:
    """Exit 0, or exit 2 with exactly one line on stderr; no exception escaped."""
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)


def test_detect_on_a_healthy_twin_says_it_is_healthy_and_names_the_tightest_node(tmp_path: Path) -> None:
    path = _write(tmp_path, HEALTHY)
    result = runner.invoke(app, ["detect", "--snapshot", str(path)])
    assert result.exit_code == 0, result.output
    assert "healthy" in result.stdout
    assert "tightest node: gateway at 50% of capacity (target 80%)" in result.stdout
    assert "constraint:" not in result.stdout  # read like a problem
    doc = json.loads(runner.invoke(app, ["detect", "--snapshot", str(path), "--json"]).stdout)
    assert doc == {"constraint": "gateway", "findings": []}


def test_detect_names_the_constraint_when_there_is_a_problem(tmp_path: Path) -> None:
    busy = copy.deepcopy(HEALTHY)
    busy["nodes"][0]["external_arrival_rate"] = 950.0
    busy["nodes"][0]["metrics"] = {"arrival_rate": 950.0, "throughput": 950.0, "utilization": 0.95}
    busy["nodes"][1]["metrics"] = {"arrival_rate": 380.0, "throughput": 380.0, "utilization": 0.95}
    result = runner.invoke(app, ["detect", "--snapshot", str(_write(tmp_path, busy))])
    assert result.exit_code == 0, result.output
    assert "constraint: gateway at 95% of capacity" in result.stdout and "healthy" not in result.stdout


def _chain(length: int, ratio: float) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "replicas": 1, "capacity_per_replica": 1.0, "external_arrival_rate": 1.0 if i == 0 else 0.0}
        for i in range(length)
    ]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}", "ratio": ratio} for i in range(length - 1)]
    return {"schema": "twin.v1", "twin_id": "c", "observed_at": "2026-11-21T22:00:00Z", "nodes": nodes, "edges": edges}


def _mutated(path: list[Any], value: Any) -> str:
    doc = copy.deepcopy(DOC)
    target: Any = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return json.dumps(doc)


HOSTILE: list[tuple[str, str | bytes | dict[str, Any], str]] = [
    ("invalid UTF-8", b"\xff\xfe\x00\x01garbage\x80", "not UTF-8"),
    ("binary", bytes(range(256)) * 4, "not UTF-8"),
    ("nested tags", _mutated(["nodes", 0, "tags"], "@").replace('"@"', "[" * 50_000 + "]" * 50_000), "too deeply"),
    ("5000 digits", _mutated(["nodes", 0, "replicas"], "@").replace('"@"', "9" * 5000), "node 'gateway': replicas"),
    ("replicas 10^400", _mutated(["nodes", 1, "replicas"], 10**400), "node 'checkout': replicas"),
    ("capacity 1e308", _mutated(["nodes", 1, "capacity_per_replica"], 1e308), "node 'checkout': capacity_per_replica"),
    ("ratio 1e308", _mutated(["edges", 0, "ratio"], 1e308), "edge 'gateway'->'checkout': ratio"),
    ("chain of ratio 2", _chain(1100, 2.0), "traffic amplification"),
    ("replicas true", _mutated(["nodes", 1, "replicas"], True), "node 'checkout': replicas"),
    ("max_replicas '12'", _mutated(["nodes", 1, "max_replicas"], "12"), "node 'checkout': max_replicas"),
    ("markup in an id", _mutated(["nodes", 2, "id"], "[/]"), "unknown node 'db'"),
]


@pytest.mark.parametrize(("case", "content", "named"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_ends_in_one_line_naming_the_problem(
    tmp_path: Path, case: str, content: str | bytes | dict[str, Any], named: str
) -> None:
    path = _write(tmp_path, content)
    for args in _commands(path):
        result = runner.invoke(app, args)
        _assert_clean(result, args)
        assert result.exit_code == 2, (case, args, result.output)
        assert named in result.stderr, (case, args, result.stderr)


def test_a_hostile_history_line_is_named(tmp_path: Path) -> None:
    snapshot = _write(tmp_path, DOC)
    history = _write(tmp_path, json.dumps(DOC).encode() + b"\n\xff\xfe\n", "h.jsonl")
    for args in (
        ["detect", "--snapshot", str(snapshot), "--history", str(history)],
        ["twin", "validate", str(history)],
    ):
        result = runner.invoke(app, args)
        _assert_clean(result, args)
        assert result.exit_code == 2 and "line 2" in result.stderr


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, 1e-308, 10**400, 2**63, -0.0, 5e-324]),
    st.text(max_size=6),
)
_json_values = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_paths = st.sampled_from(
    [
        ["nodes", 0, "replicas"],
        ["nodes", 0, "external_arrival_rate"],
        ["nodes", 0, "metrics", "throughput"],
        ["nodes", 0, "tags"],
        ["nodes", 0, "id"],
        ["nodes", 1, "capacity_per_replica"],
        ["nodes", 1, "min_replicas"],
        ["nodes", 1, "max_replicas"],
        ["nodes", 2, "kind"],
        ["edges", 0, "ratio"],
        ["edges", 1, "target"],
        ["observed_at"],
        ["twin_id"],
        ["nodes"],
        ["edges"],
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_paths, _json_values)
def test_fuzzed_documents_never_crash_the_cli(tmp_path: Path, path: list[Any], value: Any) -> None:
    file = _write(tmp_path, _mutated(path, value))
    for args in _commands(file):
        _assert_clean(runner.invoke(app, args), args)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_bytes_never_crash_the_cli(tmp_path: Path, content: bytes) -> None:
    file = _write(tmp_path, content)
    for args in _commands(file):
        _assert_clean(runner.invoke(app, args), args)


class _CountingList(list[Any]):
    """A node list that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Any:
        _CountingList.walks += 1
        return super().__iter__()


def test_detect_json_walks_the_nodes_once_not_once_per_finding() -> None:
    # 10,000 nodes took 4.7 s and 50,000 took 80 s when every finding scanned the node list.
    from agents import detect, revise
    from controller.cli.detect import detection_json
    from twin.contract import parse_snapshot

    nodes = [
        {"id": f"n{i}", "replicas": 1, "capacity_per_replica": 100.0, "external_arrival_rate": 90.0} for i in range(300)
    ]
    snapshot = parse_snapshot(
        {"schema": "twin.v1", "twin_id": "t", "observed_at": "2026-11-21T22:00:00Z", "nodes": nodes}
    )
    detection = detect(revise(None, snapshot))
    assert len(detection.findings) >= 300
    counted = snapshot.model_copy(update={"nodes": _CountingList(snapshot.nodes)})
    _CountingList.walks = 0
    doc = detection_json(detection, counted)
    assert len(doc["findings"]) == len(detection.findings)
    assert _CountingList.walks <= 2
