"""Planning a playbook over beliefs: selection, preconditions (held ones over the demand history), steps, proposals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agents import Desires, revise
from agents.beliefs import Beliefs
from agents.forecast import DemandHistory
from agents.playbook import PlaybookError, load_playbook
from agents.playbook.plan import PlaybookPlan, _span, plan_playbook
from agents.proposal import plan_hash, proposal_id
from tests.agents.conftest import T0, node, snap
from twin.actions import ScaleAction

BUCKET = 300.0
NOW = T0 + timedelta(seconds=30)


def estate() -> Beliefs:
    """gateway (critical) -> api (standard, 20% utilized) -> worker (standard, 50%); cache (standard, 10%)."""
    return revise(
        None,
        snap(
            [
                node("gateway", 4, 100.0, ext=200.0, tags={"tier": "critical"}),
                node("api", 10, 100.0, lo=2, hi=20, tags={"tier": "standard"}),
                node("worker", 4, 100.0, lo=2, hi=8, tags={"tier": "standard"}),
                node("cache", 2, 100.0, ext=20.0, lo=1, hi=4, kind="database", tags={"tier": "standard"}),
            ],
            [("gateway", "api", 1.0), ("api", "worker", 1.0)],
            at=30,
        ),
    )


def playbook(
    *,
    preconditions: tuple[str, ...] = (),
    replicas: Any = "{{ replicas - 1 }}",
    target: str = "  tags: {tier: standard}",
    compensation: str = "inverse",
    max_nodes: int = 10,
    extra_steps: str = "",
) -> Any:
    pre = "".join(f"  - {p}\n" for p in preconditions) or "  []\n"
    text = f"""name: test-book
description: a test
version: 3
owner: sre
target:
{target}
triggers:
  - {{type: schedule, cron: "0 3 * * *", timezone: UTC}}
preconditions:
{pre}steps:
  - name: resize
    action: scale
    params: {{replicas: {replicas!r}}}
    compensation: {compensation}
    verify: {{expect: demand_utilization < 0.9, within: 10m}}
{extra_steps}limits: {{max_duration: 1h, max_nodes: {max_nodes}}}
"""
    return load_playbook(text, "test-book.yaml")


def plan(book: Any, beliefs: Beliefs | None = None, history: DemandHistory | None = None) -> PlaybookPlan:
    return plan_playbook(book, beliefs or estate(), desires=Desires(), history=history, now=NOW)


def history(values: dict[int, float], node_id: str = "api") -> DemandHistory:
    """Buckets `k` before the one holding NOW (0 = NOW's bucket) with demand `v`."""
    k_now = int(NOW.timestamp() // BUCKET)
    return DemandHistory({node_id: tuple(sorted(((k_now - k) * BUCKET, v) for k, v in values.items()))}, BUCKET)


def two_hours(value: float = 20.0) -> dict[int, float]:
    return dict.fromkeys(range(25), value)


def test_the_target_selects_by_tags_kinds_and_ids_in_topological_order() -> None:
    assert estate().order == ("gateway", "cache", "api", "worker")
    assert [n.node for n in plan(playbook()).nodes] == ["cache", "api", "worker"]
    assert [n.node for n in plan(playbook(target="  kinds: [database]")).nodes] == ["cache"]
    assert [n.node for n in plan(playbook(target="  nodes: [worker, gateway]")).nodes] == ["gateway", "worker"]


def test_max_nodes_caps_the_nodes_changed_and_lists_the_rest_as_skipped() -> None:
    result = plan(playbook(max_nodes=2))
    assert [p.target for p in result.proposals] == ["cache", "api"]
    assert [(s.node, s.reason.split(":")[0]) for s in result.skipped] == [("worker", "over max_nodes")]


def test_a_precondition_that_holds_lets_the_steps_plan_and_one_that_does_not_stops_them() -> None:
    result = plan(playbook(preconditions=("demand_utilization < 0.3",)))
    by = {n.node: n for n in result.nodes}
    assert by["api"].met and by["api"].preconditions[0].value is True and by["api"].proposal is not None
    assert not by["worker"].met and by["worker"].preconditions[0].value is False
    assert by["worker"].steps == () and by["worker"].proposal is None
    assert "preconditions not met: demand_utilization < 0.3" in by["worker"].reason


def test_a_held_condition_is_met_when_every_bucket_of_the_window_shows_it() -> None:
    book = playbook(preconditions=("demand_utilization < 0.3 for 2h",), target="  nodes: [api]")
    node_plan = plan(book, history=history(two_hours())).nodes[0]
    assert node_plan.met and node_plan.proposal is not None
    assert node_plan.preconditions[0].detail == "held in all 25 buckets of the last 2 h"


def test_one_bucket_over_the_threshold_breaks_a_held_condition() -> None:
    book = playbook(preconditions=("demand_utilization < 0.3 for 2h",), target="  nodes: [api]")
    values = two_hours() | {7: 450.0}  # 45% of today's 1000 rps, 35 minutes ago
    node_plan = plan(book, history=history(values)).nodes[0]
    assert not node_plan.met and node_plan.proposal is None
    detail = node_plan.preconditions[0].detail
    assert detail.startswith("did not hold at") and detail.endswith("(demand 450 rps; it must hold for 2 h)")
    assert node_plan.preconditions[0].value is True  # it holds now: the history breaks it


def test_a_gap_in_the_history_is_unknown_so_a_held_condition_is_not_shown_to_hold() -> None:
    book = playbook(preconditions=("demand_utilization < 0.3 for 2h",), target="  nodes: [api]")
    values = two_hours()
    del values[12]
    node_plan = plan(book, history=history(values)).nodes[0]
    assert not node_plan.met
    assert "not shown to hold: 1 of 25 buckets of the last 2 h missing" in node_plan.preconditions[0].detail
    no_history = plan(book).nodes[0]
    assert not no_history.met
    assert no_history.preconditions[0].detail == "no demand history: cannot show it held for 2 h"


def test_a_held_condition_that_does_not_hold_now_says_how_long_it_must_hold() -> None:
    book = playbook(preconditions=("demand_utilization < 0.3 for 2h",), target="  nodes: [worker]")
    [worker] = plan(book, history=history(two_hours())).nodes
    [held] = worker.preconditions
    assert not held.met and held.value is False and held.hold_seconds == 7200
    assert held.detail == "does not hold now (it must hold for 2 h)"
    assert (
        worker.reason
        == "preconditions not met: demand_utilization < 0.3 for 2h: does not hold now (it must hold for 2 h)"
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(90, "90 s"), (600, "10 m"), (5400, "90 m"), (7200, "2 h"), (86400, "24 h"), (172800, "2 d"), (1.5, "1.5 s")],
)
def test_durations_read_as_a_playbook_writes_them(seconds: float, words: str) -> None:
    assert _span(seconds) == words


def test_a_held_condition_over_a_name_the_history_lacks_is_a_load_error() -> None:
    with pytest.raises(PlaybookError) as err:
        playbook(preconditions=("observed_queue_depth > 1000 for 10m",))
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.field) == ("test-book.yaml", 10, "preconditions[0]")
    assert "'observed_queue_depth' is not in the demand history" in problem.message
    with pytest.raises(PlaybookError, match="forecast_peak_utilization\\(\\) cannot be computed for past buckets"):
        playbook(preconditions=("forecast_peak_utilization(next=1h) < 0.5 for 1h",))
    assert playbook(preconditions=("max(demand, 1) / capacity < 0.5 for 1h",)).preconditions[0].hold_seconds == 3600


def test_untrusted_and_stale_beliefs_take_no_action_and_say_why() -> None:
    beliefs = estate()
    doubtful = beliefs.model_copy(
        update={"nodes": beliefs.nodes | {"api": beliefs.nodes["api"].model_copy(update={"confidence": 0.25})}}
    )
    result = plan(playbook(), doubtful)
    assert "api" not in [n.node for n in result.nodes]
    assert [s.node for s in result.skipped] == ["api"] and "confidence 0.25" in result.skipped[0].reason
    stale = plan(playbook(), beliefs.model_copy(update={"stale": True}))
    assert stale.nodes == () and all("stale" in s.reason for s in stale.skipped) and len(stale.skipped) == 3


def test_an_out_of_bounds_value_is_refused_not_clamped() -> None:
    result = plan(playbook(replicas="{{ replicas * 3 }}", target="  nodes: [api, worker]"))
    api, worker = result.nodes
    assert api.steps[0].status == "refused" and "outside api's bounds 2..20" in api.steps[0].reason
    assert api.steps[0].action is None and api.proposal is None and "resize was refused" in api.reason
    assert worker.proposal is None
    below = plan(playbook(replicas=1, target="  nodes: [api]")).nodes[0]
    assert below.steps[0].status == "refused" and "computed as 1" in below.steps[0].reason
    half = plan(playbook(replicas="{{ replicas / 3 }}", target="  nodes: [api]")).nodes[0]
    assert half.steps[0].status == "refused" and "not a whole number" in half.steps[0].reason


def test_a_step_that_changes_nothing_is_skipped() -> None:
    node_plan = plan(playbook(replicas="{{ replicas }}", target="  nodes: [api]")).nodes[0]
    assert node_plan.steps[0].status == "skipped" and "already runs 10 replicas" in node_plan.steps[0].reason
    assert node_plan.proposal is None and node_plan.reason == "no step changes anything"


def test_compensation_inverse_restores_the_current_value_and_none_has_none() -> None:
    inverse = plan(playbook(target="  nodes: [api]")).nodes[0]
    assert inverse.steps[0].action == ScaleAction(node="api", replicas=9)
    assert inverse.steps[0].compensation == ScaleAction(node="api", replicas=10)
    assert inverse.proposal is not None and inverse.proposal.compensations == (ScaleAction(node="api", replicas=10),)
    none = plan(playbook(target="  nodes: [api]", compensation="none")).nodes[0]
    assert none.steps[0].compensation is None
    assert none.proposal is not None and none.proposal.compensations == ()


def test_intent_is_scale_down_only_when_every_action_removes_replicas() -> None:
    down = plan(playbook(target="  nodes: [api]")).proposals[0]
    up = plan(playbook(target="  nodes: [api]", replicas="{{ replicas + 2 }}")).proposals[0]
    assert (down.intent, up.intent) == ("scale_down", "remediate")


def test_the_proposal_is_made_as_the_agent_makes_one() -> None:
    result = plan(playbook(preconditions=("demand_utilization < 0.3",), target="  nodes: [api]"))
    p = result.proposals[0]
    actions = (ScaleAction(node="api", replicas=9),)
    assert p.actions == actions and p.plan_hash == plan_hash(actions) == p.plan.plan_hash
    assert p.id == proposal_id("t", "api", p.plan_hash) and p.twin_id == "t" and p.target == "api"
    assert p.plan.name == "playbook:test-book" and p.plan.steps[0].compensation == ScaleAction(node="api", replicas=10)
    assert p.plan.steps[0].preconditions == ("demand_utilization < 0.3",)
    assert "api" in p.plan.predicted and p.plan.predicted["api"].replicas_after == 9
    assert p.findings == () and p.alternatives == () and next(b.node for b in p.beliefs_used) == "api"
    assert "Playbook test-book v3 on api" in p.rationale and "resize: scale api -> 9" in p.rationale
    assert "demand_utilization < 0.3 (= true)" in p.rationale
    assert p.context is not None and "api" in [n.id for n in p.context.nodes]
    assert p.observed_at == result.observed_at


def test_planning_is_deterministic_and_the_plan_is_json() -> None:
    book = playbook(preconditions=("demand_utilization < 0.3 for 2h",))
    first = plan(book, history=history(two_hours()))
    second = plan(book, history=history(two_hours()))
    assert first == second and first.model_dump_json() == second.model_dump_json()
    assert PlaybookPlan.model_validate_json(first.model_dump_json()) == first


def test_forecast_functions_read_the_entries_forecast_carried_through_the_graph() -> None:
    # Two days of gateway load at 200 rps, 300 rps from 10:00 to 11:00: api's peak over the next day is 300.
    day = 86400.0
    k_now = int(NOW.timestamp() // BUCKET)
    points = []
    for k in range(k_now - int(2 * day / BUCKET), k_now):
        hour = (k * BUCKET % day) / 3600
        points.append((k * BUCKET, 300.0 if 10 <= hour < 11 else 200.0))
    demand = DemandHistory({"gateway": tuple(points)}, BUCKET)
    book = playbook(preconditions=("forecast_peak_rps(next=24h) > 250",), target="  nodes: [api, cache]")
    cache, api = plan(book, history=demand).nodes
    assert api.met and api.preconditions[0].value is True  # api carries 200 rps today: the forecast says more
    assert not cache.met and cache.preconditions[0].value is None
    assert cache.preconditions[0].detail == "no seasonal demand forecast reaches 'cache' over the next 24 h"
