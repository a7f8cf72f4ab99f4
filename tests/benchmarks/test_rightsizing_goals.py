"""The right-sizing benchmark's closed loop on its fixed seeds: the goal ratios hold (issue 12).

Slow (a simulated day per controller and day, about a minute each for the agent): the figures
README reports come from the same code (benchmarks/bench_rightsizing.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import bench_rightsizing as bench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=bench.DAYS)
def day(request: pytest.FixtureRequest) -> tuple[str, dict[str, dict[str, Any]], dict[str, Any]]:
    loop = {mode: bench.closed_loop(request.param, mode) for mode in ("hpa", "foresight", "agent")}
    return request.param, loop, bench.ratios(loop)


def test_violations_are_at_most_half_the_hpa_rules(day: tuple[str, Any, dict[str, Any]]) -> None:
    _, _, r = day
    assert r["violations_vs_hpa"] <= bench.GOAL_VIOLATIONS


def test_replica_hours_are_within_ten_percent_of_foresight_with_no_more_than_one_percent_more_violations(
    day: tuple[str, Any, dict[str, Any]],
) -> None:
    _, _, r = day
    assert r["replica_hours_vs_foresight"] <= bench.AIM_FORESIGHT
    assert r["violations_vs_foresight_pct_of_node_minutes"] <= 1.0


def test_replica_hours_are_no_more_than_the_hpa_rules_where_any_controller_can_match_it(
    day: tuple[str, dict[str, dict[str, Any]], dict[str, Any]],
) -> None:
    """Where the HPA kept every node serving, the agent spends no more; where it left one without a
    ready replica, the agent stays as close to the HPA as perfect foresight (which cannot match it)."""
    name, loop, r = day
    if not r["hpa_dead_nodes"]:
        assert r["replica_hours_vs_hpa"] <= bench.GOAL_REPLICA_HOURS, name
    else:
        assert r["foresight_replica_hours_vs_hpa"] > bench.GOAL_REPLICA_HOURS, name
        assert r["replica_hours_vs_hpa"] <= r["foresight_replica_hours_vs_hpa"] * 1.03, name
        assert loop["hpa"]["slo_violation_node_minutes"] > 2 * loop["agent"]["slo_violation_node_minutes"]


def test_the_agent_does_not_flap_or_outrun_the_policy_rate_limit(day: tuple[str, dict[str, Any], Any]) -> None:
    _, loop, _ = day
    agent = loop["agent"]
    assert agent["forecast_misses"] <= 3
    assert agent["max_actions_per_node_in_30_min"] <= 3  # the shipped safety policy's rate limit
