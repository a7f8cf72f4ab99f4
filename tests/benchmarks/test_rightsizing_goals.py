"""The right-sizing benchmark's closed loop on its fixed seeds (issue 12).

Slow (a simulated day per controller and day, about a minute each for the agent): the figures
README reports come from the same code (benchmarks/bench_rightsizing.py). The goal is set on the
diurnal day; the second day is the report that the method is not tuned to one curve, held to the
aim against perfect foresight and to half the HPA rule's violations.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import bench_rightsizing as bench

pytestmark = pytest.mark.slow

Day = tuple[dict[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def days() -> dict[str, Day]:
    out: dict[str, Day] = {}
    for name in bench.DAYS:
        loop = {mode: bench.closed_loop(name, mode) for mode in ("hpa", "foresight", "agent")}
        out[name] = (loop, bench.ratios(loop))
    return out


def test_the_goal_holds_on_the_diurnal_day(days: dict[str, Day]) -> None:
    """Violations <= x0.5 and replica-hours <= x1.0 the HPA rule's, the agent never over the policy's rate limit."""
    loop, r = days["diurnal_day"]
    assert r["violations_vs_hpa"] <= bench.GOAL_VIOLATIONS
    assert r["replica_hours_vs_hpa"] <= bench.GOAL_REPLICA_HOURS
    assert loop["agent"]["max_actions_per_node_in_30_min"] <= 3  # the shipped safety policy's rate limit


@pytest.mark.parametrize("name", bench.DAYS)
def test_violations_are_at_most_half_the_hpa_rules(days: dict[str, Day], name: str) -> None:
    _, r = days[name]
    assert r["violations_vs_hpa"] <= bench.GOAL_VIOLATIONS


@pytest.mark.parametrize("name", bench.DAYS)
def test_replica_hours_are_within_ten_percent_of_foresight_with_no_more_than_one_percent_more_violations(
    days: dict[str, Day], name: str
) -> None:
    _, r = days[name]
    assert r["replica_hours_vs_foresight"] <= bench.AIM_FORESIGHT
    assert r["violations_vs_foresight_pct_of_node_minutes"] <= 1.0


@pytest.mark.parametrize("name", bench.DAYS)
def test_forecast_misses_are_few(days: dict[str, Day], name: str) -> None:
    loop, _ = days[name]
    assert loop["agent"]["forecast_misses"] <= 3
