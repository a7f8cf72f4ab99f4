"""Snapshot.quality: what a source could not observe, additive to twin.v1 and validated like the rest."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships no type stubs; only its validator is used
import pytest

from tests.twin.conftest import DOC
from twin.contract import QualityIssue, SnapshotError, parse_snapshot

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "twin" / "schema" / "twin.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def with_quality(*issues: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc["quality"] = list(issues)
    return doc


MISSING = {"node": "checkout", "metric": "utilization", "problem": "missing", "detail": "query returned no series"}


def test_a_snapshot_without_quality_serializes_as_before() -> None:
    snapshot = parse_snapshot(DOC)
    assert snapshot.quality == []
    assert "quality" not in json.loads(snapshot.to_json())  # old readers and digests see the same document


def test_quality_issues_round_trip() -> None:
    snapshot = parse_snapshot(with_quality(MISSING, {**MISSING, "metric": "ratio", "problem": "ambiguous"}))
    assert snapshot.quality[0] == QualityIssue(**MISSING)
    assert parse_snapshot(snapshot.to_json()) == snapshot
    assert VALIDATOR.is_valid(json.loads(snapshot.to_json()))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"node": "nowhere"}, "quality issue 'utilization': unknown node 'nowhere'"),
        ({"metric": "utilisation"}, "quality[0] (node 'checkout'): metric"),
        ({"problem": "late"}, "quality[0] (node 'checkout'): problem"),
        ({"detail": ""}, "quality[0] (node 'checkout'): detail"),
    ],
)
def test_a_bad_quality_issue_is_rejected_naming_it(change: dict[str, Any], named: str) -> None:
    doc = with_quality({**MISSING, **change})
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(doc)
    assert named in str(info.value)
    if "node" not in change:  # an unknown node is a graph rule, beyond JSON Schema
        assert not VALIDATOR.is_valid(doc)


def test_an_extra_field_in_an_issue_is_rejected_by_both() -> None:
    doc = with_quality({**MISSING, "value": 0.0})
    with pytest.raises(SnapshotError, match="quality"):
        parse_snapshot(doc)
    assert not VALIDATOR.is_valid(doc)
