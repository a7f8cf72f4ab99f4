"""Sizing for the target and the latency SLO (agents/sizing.py), and how plans say which one binds."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentState, Desires, FindingKind, decide
from agents.forecast import DAY, DemandRecorder
from agents.sizing import carried, replicas_for, slo_carried
from twin.queueing import response_time_p95
from twin.scenario import parse_scenario
from twin.simulator import Simulator


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.floats(5.0, 500.0), st.floats(3.1, 30.0))
def test_the_slo_bound_is_the_largest_load_within_the_slo(c: int, mu: float, slack: float) -> None:
    slo_ms = 1000.0 * slack / mu  # above an idle server's p95 (3 mean service times): some load is carried
    lam = slo_carried(c, mu, slo_ms)
    assert 0 < lam < c * mu
    assert 1000.0 * response_time_p95(c, lam, mu) <= slo_ms * (1 + 1e-6)
    if lam < c * mu * 0.999:
        assert 1000.0 * response_time_p95(c, min(c * mu * 0.9999, lam * 1.01 + 1e-6), mu) > slo_ms * (1 - 1e-6)


def test_a_service_slower_than_its_slo_carries_nothing() -> None:
    assert slo_carried(4, 10.0, 250.0) == 0.0  # an idle server's p95 is ~300 ms (3 x the 100 ms mean)


def test_few_replicas_need_more_headroom_than_the_target_many_need_less() -> None:
    mu, slo = 140.0, 32.9  # catalog in diurnal_day: the p95 at 90% on its 9 replicas
    assert carried(2, mu, 0.9, slo) < 0.9 * 2 * mu  # the SLO binds: 62% at most
    assert carried(12, mu, 0.9, slo) == pytest.approx(0.9 * 12 * mu)  # the target binds
    assert replicas_for(250.0, 0.9, mu, 1, 24) == 2
    assert replicas_for(250.0, 0.9, mu, 1, 24, slo) == 3
    assert replicas_for(250.0, 0.9, mu, 1, 2, slo) == 2  # capped at max_replicas
    assert replicas_for(0.0, 0.9, mu, 3, 24, slo) == 3


def test_a_plan_says_when_the_latency_slo_binds_before_the_target() -> None:

    now = datetime(2026, 11, 10, 5, 0, tzinfo=UTC)

    def truth(t: float) -> float:  # rising through 05:00: 237 rps now, about 255 ten minutes on
        return 240.0 + 150.0 * math.sin(2 * math.pi * (t - now.timestamp() - 60.0) / DAY)

    recorder = DemandRecorder()
    t = now.timestamp() - 3 * DAY
    while t < now.timestamp():
        recorder.record(t, {"web": truth(t)})
        t += 60.0
    scenario = parse_scenario(
        {
            "twin_id": "w",
            "start": now.isoformat(),
            "nodes": [
                {"id": "web", "replicas": 2, "capacity_per_replica": 180.0, "min_replicas": 1, "max_replicas": 9}
            ],
            "load": {"web": {"kind": "constant", "rate": truth(now.timestamp())}},
        }
    )
    decision = decide(
        AgentState(),
        Simulator(scenario).snapshot(),
        Desires(target_utilization=0.9, latency_slo_ms={"web": 29.7}),
        demand_history=recorder.history(),
    )
    (finding,) = decision.detection.of_kind(FindingKind.PREDICTED)
    assert "what 2 replicas carry within its 30 ms p95 SLO" in finding.message
    (proposal,) = decision.proposals
    assert proposal.rationale.startswith("web is heading over what 2 replicas carry within its 30 ms p95 SLO")
    assert [a.model_dump(mode="json") for a in proposal.actions] == [{"type": "scale", "node": "web", "replicas": 3}]
