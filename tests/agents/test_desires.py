"""Desires: YAML parsing, defaults, validation messages, per-node and per-tag targets."""

from __future__ import annotations

from pathlib import Path

import pytest

import agents
from agents import Desires, DesiresError, GoalKind, load_desires
from twin.contract import Node

EXAMPLE = Path(agents.__file__).parent / "desires" / "example.yaml"


def test_empty_text_gives_defaults() -> None:
    assert load_desires("") == Desires()
    assert Desires().target_utilization == 0.8


def test_example_file_parses() -> None:
    desires = load_desires(EXAMPLE.read_text())
    assert desires.budget.per_team["edge"] == 60
    assert desires.latency_slo_ms["checkout"] == 300


def test_node_target_beats_tag_target() -> None:
    desires = load_desires(
        "targets:\n  - {tag: 'tier=critical', utilization: 0.7}\n  - {node: checkout, utilization: 0.75}\n"
    )
    crit = Node(id="x", replicas=1, capacity_per_replica=1.0, tags={"tier": "critical"})
    checkout = Node(id="checkout", replicas=1, capacity_per_replica=1.0, tags={"tier": "critical"})
    plain = Node(id="y", replicas=1, capacity_per_replica=1.0)
    assert desires.target_for(crit) == 0.7
    assert desires.target_for(checkout) == 0.75
    assert desires.target_for(plain) == 0.8


def test_partial_priorities_merge_with_defaults() -> None:
    desires = load_desires("priorities: {latency_slo: 0}\n")
    assert desires.ranked_goals()[0] is GoalKind.LATENCY_SLO


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("target_utilization: 1.5\n", "target_utilization"),
        ("targets:\n  - {utilization: 0.7}\n", "exactly one of"),
        ("budget: {total_replicas: -1}\n", "budget.total_replicas"),
        ("scale_down_below: 0.7\nscale_down_to: 0.6\n", "hysteresis"),
        ("unknown_key: 1\n", "unknown_key"),
        ("- a list\n", "mapping"),
    ],
)
def test_invalid_desires_name_the_field(text: str, needle: str) -> None:
    with pytest.raises(DesiresError, match=needle):
        load_desires(text)
