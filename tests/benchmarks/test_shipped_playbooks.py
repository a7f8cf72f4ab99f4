"""Each shipped playbook on the simulator over a day, on its fixed seeds: what it does, saves, spends and costs in SLO.

Slow (every case of benchmarks/bench_playbooks.py: eleven simulated days, about 15 s): the figures
README reports come from the same code. The bar of the product issue: SLO-violation minutes added by
a playbook (node-minutes over the SLO with it and not without it) are zero, always. Unattended, only
what the real safety policy auto-approves runs; the "approved at once" cases stand for an SRE who
approves a parked step the moment it parks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from benchmarks import bench_playbooks as bench
from benchmarks._playbook_day import cron_matches
from controller.app.playbooks import find_playbook, playbook_files

pytestmark = pytest.mark.slow

Cases = dict[str, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def cases() -> Cases:
    return bench.simulate()


def unchanged(case: dict[str, Any]) -> bool:
    """The day with the playbook is the baseline: nothing applied, the same figures."""
    rh, v = case["replica_hours"], case["slo_violation_node_minutes"]
    return (
        not case["actions"]
        and rh["delta"] == 0
        and v["with"] == v["baseline"]
        and v["added"] == v["removed"] == 0
        and not case["changed_nodes"]
    )


def test_every_shipped_playbook_has_a_day() -> None:
    assert {c.playbook for c in bench.CASES} == {p.stem for p in playbook_files(bench.PLAYBOOKS)}


def test_no_playbook_adds_slo_violations_and_the_policy_denies_nothing(cases: Cases) -> None:
    for name, by_case in cases.items():
        for key, case in by_case.items():
            assert case["slo_violation_node_minutes"]["added"] == 0, (name, key)
            assert case["denied"] == [], (name, key)


def test_nightly_rightsize_saves_replica_hours_on_an_oversized_standard_tier(cases: Cases) -> None:
    case = cases["nightly-rightsize"]["oversized"]
    assert case["runs"] == ["02:30"]
    # One low-risk step each (at most 2 replicas, at most a quarter): the policy auto-approves them.
    moves = {(a["node"], a["from"], a["to"], a["at"], a["approved_by"], a["verification"]) for a in case["actions"]}
    assert moves == {
        ("catalog", 20, 18, "02:30", "policy", "verified"),
        ("search", 12, 10, "02:30", "policy", "verified"),
    }
    assert case["parked"] == []
    assert case["replica_hours"]["delta"] < 0
    assert case["replica_hours"]["delta"] == pytest.approx(-4 * 21.5, abs=0.5)  # 4 replicas fewer from 02:30
    assert case["slo_violation_node_minutes"]["added"] == 0


def test_nightly_rightsize_leaves_the_shipped_diurnal_day_alone(cases: Cases) -> None:
    """catalog and search are sized for the day's peak: the 24 h forecast peak is over 60% of their capacity."""
    case = cases["nightly-rightsize"]["diurnal"]
    assert case["runs"] == ["02:30"] and unchanged(case) and case["parked"] == []
    assert set(case["preconditions_unmet"]) == {"catalog", "search"}
    assert all("forecast_peak_utilization(next=24h) < 0.6" in r for r in case["preconditions_unmet"].values())


def test_prescale_runs_at_half_past_seven_in_berlin_and_leaves_a_sized_estate_alone(cases: Cases) -> None:
    case = cases["prescale-daily-peak"]["diurnal"]
    assert case["runs"] == ["06:30"]  # 07:30 CET on a Tuesday
    assert unchanged(case) and case["parked"] == []
    assert all("forecast_peak_utilization(next=3h) > 0.7" in r for r in case["preconditions_unmet"].values())


def test_prescale_unattended_parks_its_scale_ups_and_changes_nothing(cases: Cases) -> None:
    """Every node of the shop carries all of its traffic: the policy wants two approvers for any scale-up there."""
    case = cases["prescale-daily-peak"]["night_sized"]
    assert unchanged(case)
    assert {(p["node"], p["action"], p["required_approvals"]) for p in case["parked"]} == {
        ("catalog", "scale catalog -> 7", 2),
        ("search", "scale search -> 4", 2),
    }
    assert case["slo_violation_node_minutes"]["baseline"] > 0  # the night-sized estate cannot carry the morning


def test_prescale_approved_at_once_removes_violations_and_adds_none(cases: Cases) -> None:
    case = cases["prescale-daily-peak"]["night_sized+approved_at_once"]
    assert [(a["node"], a["from"], a["to"], a["at"], a["approved_by"]) for a in case["actions"]] == [
        ("catalog", 3, 7, "06:30", "human"),
        ("search", 2, 4, "06:30", "human"),
    ]
    v = case["slo_violation_node_minutes"]
    assert v["added"] == 0 and v["removed"] > 0 and v["with"] < v["baseline"]
    for node in ("catalog", "search"):
        figures = case["changed_nodes"][node]["slo_violation_minutes"]
        assert figures["with"] < figures["baseline"]
    assert case["replica_hours"]["delta"] > 0  # what it spends


def test_drain_backlog_unattended_only_parks(cases: Cases) -> None:
    """`approval: always`: without a human it proposes at every run the backlog grows, and changes nothing."""
    case = cases["drain-backlog"]["backlog"]
    assert len(case["runs"]) == 96  # every 15 minutes (its finding trigger is not simulated)
    assert unchanged(case)
    assert case["parked"]
    assert all(p["node"] == "order-events" and p["why"] == "approval: always" for p in case["parked"])
    assert case["parked"][0]["at"] == "10:15"  # the first run after the consumers slow down at 10:00
    queue = case["queues"]["order-events"]
    assert queue["backlog_peak"]["with"] == queue["backlog_peak"]["baseline"] > 100_000


def test_drain_backlog_approved_at_once_drains_the_queue_within_its_verify_window(cases: Cases) -> None:
    playbook = find_playbook("drain-backlog", bench.PLAYBOOKS)
    (step,) = playbook.steps
    assert step.verify.expect.source == f"observed_queue_depth < {bench.DRAIN_THRESHOLD:.0f}"
    case = cases["drain-backlog"]["backlog+approved_at_once"]
    (action,) = case["actions"]
    assert action["node"] == "order-events" and action["at"] == "10:15" and action["approved_by"] == "human"
    assert action["to"] > action["from"] and action["verification"] == "verified"
    queue = case["queues"]["order-events"]
    (drained,) = queue[f"minutes_to_under_{bench.DRAIN_THRESHOLD:.0f}_after_each_action"]
    assert 0 < drained <= step.verify.within / 60.0
    assert queue["backlog_peak"]["with"] < queue["backlog_peak"]["baseline"] / 5
    v = case["slo_violation_node_minutes"]
    assert v["added"] == 0 and v["with"] < v["baseline"]


@pytest.mark.parametrize(
    ("spec", "zone", "at", "fires"),
    [
        ("30 7 * * MON-FRI", "Europe/Berlin", datetime(2026, 11, 24, 7, 30), True),  # a Tuesday
        ("30 7 * * MON-FRI", "Europe/Berlin", datetime(2026, 11, 21, 7, 30), False),  # a Saturday
        ("30 7 * * MON-FRI", "Europe/Berlin", datetime(2026, 11, 24, 7, 31), False),
        ("30 2 * * *", "UTC", datetime(2026, 11, 22, 2, 30), True),
        ("*/15 * * * *", "UTC", datetime(2026, 11, 24, 10, 45), True),
        ("*/15 * * * *", "UTC", datetime(2026, 11, 24, 10, 50), False),
        ("0 9 1 * SUN", "UTC", datetime(2026, 11, 1, 9, 0), True),  # both day fields restricted: either
        ("0 9 2 * 0", "UTC", datetime(2026, 11, 8, 9, 0), True),
        ("@daily", "UTC", datetime(2026, 11, 24, 0, 0), True),
    ],
)
def test_cron_times(spec: str, zone: str, at: datetime, fires: bool) -> None:
    assert cron_matches(spec, at.replace(tzinfo=ZoneInfo(zone))) is fires
