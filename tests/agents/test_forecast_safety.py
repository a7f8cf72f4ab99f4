"""Forecast planning fails safe: an unattainable SLO, an idle entry, a forecast that rose after a
scale-down was proposed, a rising trend the forecast has not caught up with."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from agents import AgentState, Desires, decide
from agents.forecast import DAY, DemandRecorder
from agents.intentions import adopt
from agents.sizing import replicas_for
from twin.actions import ScaleAction
from twin.contract import Snapshot
from twin.scenario import parse_scenario
from twin.simulator import Simulator

NOW = datetime(2026, 11, 10, 5, 0, tzinfo=UTC)


def snapshot(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], load: dict[str, float]) -> Snapshot:
    scenario = parse_scenario(
        {
            "twin_id": "s",
            "start": NOW.isoformat(),
            "nodes": nodes,
            "edges": edges,
            "load": {n: {"kind": "constant", "rate": r} for n, r in load.items() if r > 0},
        }
    )
    return Simulator(scenario).snapshot()


def history(curves: dict[str, Any], days: float = 3) -> DemandRecorder:
    recorder = DemandRecorder()
    t = NOW.timestamp() - days * DAY
    while t < NOW.timestamp():
        recorder.record(t, {n: f(t) for n, f in curves.items()})
        t += 60.0
    return recorder


def test_an_slo_no_replica_count_can_meet_does_not_scale_to_the_ceiling() -> None:
    # 20 rps per replica: an idle server's p95 is ~150 ms, over the 100 ms SLO whatever the count.
    snap = snapshot(
        [{"id": "db", "replicas": 4, "capacity_per_replica": 20.0, "min_replicas": 2, "max_replicas": 50}],
        [],
        {"db": 10.0},
    )
    rec = history({"db": lambda t: 10.0})
    decision = decide(AgentState(), snap, Desires(latency_slo_ms={"db": 100.0}), demand_history=rec.history())
    assert not [a for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction) and a.replicas > 4]
    assert replicas_for(10.0, 0.8, 20.0, 2, 50, 100.0) == 2


def test_an_entry_idle_now_whose_load_is_minutes_away_keeps_what_it_feeds() -> None:
    # b carries nothing now, 500 rps from 05:12 every day; c is fed by a (100 rps) and b.
    def b_load(t: float) -> float:
        into_day = (t - NOW.timestamp()) % DAY
        return 500.0 if 12 * 60 <= into_day < 3600 else 0.0

    nodes = [
        {"id": "a", "replicas": 2, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20},
        {"id": "b", "replicas": 2, "capacity_per_replica": 400.0, "min_replicas": 1, "max_replicas": 20},
        {"id": "c", "replicas": 8, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20},
    ]
    edges = [{"source": "a", "target": "c", "ratio": 1.0}, {"source": "b", "target": "c", "ratio": 1.0}]
    snap = snapshot(nodes, edges, {"a": 100.0, "b": 0.0})
    rec = history({"a": lambda t: 100.0, "b": b_load, "c": lambda t: 100.0 + b_load(t)})
    decision = decide(AgentState(), snap, Desires(), demand_history=rec.history())
    downs = {a.node: a.replicas for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction)}
    assert downs.get("c", 8) >= math.ceil(600.0 / (0.8 * 100.0)), decision.proposals


def test_a_waiting_scale_down_the_forecast_now_finds_too_deep_is_withdrawn() -> None:
    nodes = [{"id": "api", "replicas": 8, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20}]
    snap = snapshot(nodes, [], {"api": 300.0})
    rec = history({"api": lambda t: 300.0})
    first = decide(AgentState(), snap, Desires(), demand_history=rec.history())
    (down,) = first.proposals
    assert down.intent == "scale_down" and down.actions == (ScaleAction(node="api", replicas=4),)
    # Ten minutes on, still waiting for approval, the load is up a third: 5 replicas needed, the plan says 4.
    later = NOW + timedelta(minutes=10)
    rec.record(later - timedelta(minutes=5), {"api": 400.0})
    hot = snap.model_copy(
        update={
            "observed_at": later,
            "nodes": [snap.nodes[0].model_copy(update={"external_arrival_rate": 400.0})],
        }
    )
    state = first.new_state.model_copy(update={"intentions": (adopt(down),)})
    second = decide(state, hot, Desires(), demand_history=rec.history())
    (dropped,) = second.dropped_intentions
    assert dropped.intention.id == down.id and "the forecast now needs 5 replicas" in dropped.detail
    (again,) = second.proposals  # proposed again, to what the forecast needs now
    assert again.intent == "scale_down" and again.actions == (ScaleAction(node="api", replicas=5),)


def test_no_scale_down_while_demand_rises_faster_than_the_forecast_knows() -> None:
    # The days before were flat at 200 rps; today a ramp no history knows: 200 -> 320 rps in 15 minutes.
    scenario = parse_scenario(
        {
            "twin_id": "s",
            "start": (NOW - timedelta(minutes=15)).isoformat(),
            "nodes": [
                {"id": "api", "replicas": 10, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20}
            ],
            "load": {"api": {"kind": "ramp", "from": 200.0, "to": 320.0, "start": 0, "duration": 900}},
        }
    )
    sim = Simulator(scenario)
    snaps = sim.run(900, dt=60, record_every=60)
    rec = history({"api": lambda t: 200.0})
    decision = decide(AgentState(), snaps[-1], Desires(), history=snaps[:-1], demand_history=rec.history())
    belief = decision.beliefs.nodes["api"]
    assert belief.forecast is not None and belief.demand_slope > 0
    assert not [p for p in decision.proposals if p.intent == "scale_down"], [p.rationale for p in decision.proposals]
