"""The planner never sizes a node below what the forecast's upper band needs (property test).

A scale-up or remediation carries the upper band over readiness + cool-down; a scale-down carries
it over readiness + the hold (30 min by default).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import AgentState, Desires, decide
from agents.forecast import DAY, DemandRecorder, forecast_node
from agents.outlook import hold_window, planning_window
from agents.sizing import replicas_for
from twin.actions import ScaleAction
from twin.scenario import parse_scenario
from twin.simulator import Simulator

START = datetime(2026, 11, 10, tzinfo=UTC)


@st.composite
def estates(draw: st.DrawFn) -> dict[str, float | int | None]:
    return {
        "base": draw(st.floats(200.0, 2000.0)),
        "swing": draw(st.floats(0.1, 0.7)),
        "phase": draw(st.floats(0.0, DAY)),
        "ratio": draw(st.floats(0.2, 1.5)),
        "mu_edge": draw(st.floats(50.0, 400.0)),
        "mu_api": draw(st.floats(20.0, 300.0)),
        "edge": draw(st.integers(1, 40)),
        "api": draw(st.integers(1, 40)),
        "hours": draw(st.floats(0.0, 23.9)),
        "days": draw(st.integers(1, 8)),
        "hot": draw(st.floats(0.7, 1.4)),
        "slo": draw(st.one_of(st.none(), st.floats(30.0, 500.0))),
    }


def _truth(e: dict[str, Any], t: float) -> float:
    return float(e["base"]) * (1.0 + float(e["swing"]) * math.sin(2 * math.pi * (t - float(e["phase"])) / DAY))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(estates())
def test_no_scale_leaves_a_node_short_of_the_forecast_upper_band(e: dict[str, Any]) -> None:
    now = START + timedelta(days=int(e["days"]), hours=float(e["hours"]))
    t_now = now.timestamp()
    recorder = DemandRecorder()
    t = t_now - int(e["days"]) * DAY
    while t < t_now:
        recorder.record(t, {"edge": _truth(e, t), "api": float(e["ratio"]) * _truth(e, t)})
        t += 120.0
    # Today runs `hot` x the days before: the level correction must carry it into the plan.
    rate = _truth(e, t_now) * float(e["hot"])
    scenario = parse_scenario(
        {
            "twin_id": "p",
            "start": now.isoformat(),
            "nodes": [
                {"id": "edge", "replicas": e["edge"], "capacity_per_replica": e["mu_edge"], "min_replicas": 1,
                 "max_replicas": 60},
                {"id": "api", "replicas": e["api"], "capacity_per_replica": e["mu_api"], "min_replicas": 1,
                 "max_replicas": 60},
            ],
            "edges": [{"source": "edge", "target": "api", "ratio": e["ratio"]}],
            "load": {"edge": {"kind": "constant", "rate": rate}},
        }
    )  # fmt: skip
    snapshot = Simulator(scenario).snapshot()
    slo = {} if e["slo"] is None else {"api": float(e["slo"])}
    desires = Desires(latency_slo_ms=slo)
    decision = decide(AgentState(), snapshot, desires, demand_history=recorder.history())
    beliefs = decision.beliefs
    window = planning_window(beliefs, desires)
    f = forecast_node(
        "edge", recorder.history(), now, current=beliefs.nodes["edge"].external_rate, horizon_seconds=window
    )
    assert f is not None and f.method.startswith("seasonal")
    upper = max(beliefs.nodes["edge"].external_rate, max(p.upper for p in f.points))
    needs = {"edge": upper, "api": float(e["ratio"]) * upper}
    for n in ("edge", "api"):
        outlook = beliefs.nodes[n].forecast
        assert outlook is not None
        assert outlook.planning_rps >= needs[n] * (1 - 1e-9)
    # A scale-down must hold longer: the upper band over readiness + the hold (agents/outlook.py).
    held = forecast_node(
        "edge",
        recorder.history(),
        now,
        current=beliefs.nodes["edge"].external_rate,
        horizon_seconds=hold_window(beliefs, desires),
        band_lead_seconds=window,
    )
    assert held is not None
    top = max(upper, max(p.upper for p in held.points))
    holds = {"edge": top, "api": float(e["ratio"]) * top}
    for proposal in decision.proposals:
        for action in proposal.actions:
            if not isinstance(action, ScaleAction):
                continue  # shedding at the entry where max_replicas cannot carry the load
            node = scenario.node(action.node)
            need = replicas_for(
                (holds if proposal.intent == "scale_down" else needs)[action.node],
                desires.target_for(snapshot.node(action.node)),
                node.capacity_per_replica,
                node.min_replicas,
                node.max_replicas,
                slo.get(action.node),
            )
            assert action.replicas >= need, (proposal.rationale, action, need)
            if proposal.intent == "scale_down":
                assert "forecast" in proposal.rationale
