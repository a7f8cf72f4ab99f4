"""The validator and the published JSON Schema (twin/schema/twin.v1.json) accept and reject the same values.

Graph rules (unique ids, known edge ends, no cycles, min <= max, bounded amplification) are
beyond JSON Schema; the documents here keep them satisfied so only field types and bounds differ.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships no type stubs; only its validator is used
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.twin.conftest import DOC
from twin.contract import MAX_REPLICAS, SnapshotError, parse_snapshot

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "twin" / "schema" / "twin.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _with(path: tuple[Any, ...], value: Any) -> str:
    doc = copy.deepcopy(DOC)
    # Bounds of the node under test are opened up so no value can break min <= max (a graph rule).
    checkout = doc["nodes"][1]
    if path[-1] == "max_replicas":
        checkout["min_replicas"] = 0
    if path[-1] == "min_replicas":
        checkout["max_replicas"] = MAX_REPLICAS
    target: Any = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return json.dumps(doc)


def _verdicts(text: str) -> tuple[bool, bool]:
    by_schema = VALIDATOR.is_valid(json.loads(text))
    try:
        parse_snapshot(text)
        by_validator = True
    except SnapshotError:
        by_validator = False
    return by_schema, by_validator


FIELDS: list[tuple[Any, ...]] = [
    ("nodes", 1, "replicas"),
    ("nodes", 1, "min_replicas"),
    ("nodes", 1, "max_replicas"),
    ("nodes", 1, "capacity_per_replica"),
    ("nodes", 0, "external_arrival_rate"),
    ("nodes", 0, "metrics", "throughput"),
    ("nodes", 0, "metrics", "error_rate"),
    ("edges", 0, "ratio"),
]

CASES: list[tuple[tuple[Any, ...], Any, bool]] = [
    (("nodes", 1, "replicas"), True, False),
    (("nodes", 1, "replicas"), "2", False),
    (("nodes", 1, "replicas"), 2.0, True),
    (("nodes", 1, "replicas"), 2.5, False),
    (("nodes", 1, "replicas"), 10**7, False),
    (("nodes", 1, "max_replicas"), "12", False),
    (("nodes", 1, "capacity_per_replica"), "250", False),
    (("nodes", 1, "capacity_per_replica"), False, False),
    (("nodes", 1, "capacity_per_replica"), 250, True),
    (("nodes", 1, "capacity_per_replica"), 1e10, False),
    (("nodes", 0, "external_arrival_rate"), None, True),
    (("nodes", 0, "external_arrival_rate"), "900", False),
    (("nodes", 0, "metrics", "error_rate"), True, False),
    (("edges", 0, "ratio"), True, False),
    (("edges", 0, "ratio"), 1e7, False),
    (("observed_at",), 1_764_000_000, False),
    (("observed_at",), True, False),
]


@pytest.mark.parametrize(("path", "value", "valid"), CASES, ids=[f"{c[0][-1]}={c[1]!r}" for c in CASES])
def test_validator_and_schema_agree_on_known_cases(path: tuple[Any, ...], value: Any, valid: bool) -> None:
    assert _verdicts(_with(path, value)) == (valid, valid)


_json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIELDS), _json_values)
def test_validator_and_schema_agree_on_any_json_value(path: tuple[Any, ...], value: Any) -> None:
    by_schema, by_validator = _verdicts(_with(path, value))
    assert by_schema == by_validator, (
        f"{'.'.join(map(str, path))}={value!r}: schema {by_schema}, validator {by_validator}"
    )


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(st.integers())))
def test_observed_at_must_be_a_string_for_both(value: Any) -> None:
    assert _verdicts(_with(("observed_at",), value)) == (False, False)
