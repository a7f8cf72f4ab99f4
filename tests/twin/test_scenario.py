"""Scenario validation, load profiles, and the scenarios shipped in twin/scenarios/."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from twin.actions import ScaleAction
from twin.graph import DEFAULT_TARGET_UTILIZATION, optimal_replicas, snapshot_flow
from twin.scenario import (
    DiurnalLoad,
    RampLoad,
    ScenarioError,
    SpikeLoad,
    StepLoad,
    load_scenario,
    parse_scenario,
)
from twin.simulator import Simulator, what_if

SCENARIOS = Path(__file__).resolve().parents[2] / "twin" / "scenarios"


def base(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "twin_id": "shop",
        "start": "2026-11-21T08:00:00Z",
        "nodes": [
            {"id": "gateway", "replicas": 4, "capacity_per_replica": 250.0, "max_replicas": 10},
            {"id": "checkout", "replicas": 2, "capacity_per_replica": 100.0},
        ],
        "edges": [{"source": "gateway", "target": "checkout", "ratio": 0.4}],
        "load": {"gateway": [{"kind": "constant", "rate": 500.0}]},
    }
    raw.update(overrides)
    return raw


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": "2026-11-21T08:00:00"}, "start: Input should have timezone info"),
        ({"noise": -0.1}, "noise: Input should be greater than or equal to 0"),
        ({"twin_id": ""}, "twin_id: String should have at least 1 character"),
        ({"nodes": []}, "nodes: List should have at least 1 item"),
        (
            {"nodes": [{"id": "gateway", "replicas": -1, "capacity_per_replica": 1.0}]},
            "nodes[0] ('gateway').replicas: Input should be greater than or equal to 0",
        ),
        (
            {"edges": [{"source": "gateway", "target": "nowhere", "ratio": 1.0}]},
            "edges[0].target: unknown node 'nowhere'",
        ),
        (
            {"edges": [{"source": "gateway", "target": "checkout", "ratio": 1.0}] * 2},
            "edges[1]: duplicate edge 'gateway'->'checkout'",
        ),
        (
            {
                "edges": [
                    {"source": "gateway", "target": "checkout", "ratio": 1.0},
                    {"source": "checkout", "target": "gateway", "ratio": 1.0},
                ]
            },
            "edges: form a cycle gateway -> checkout -> gateway",
        ),
        ({"load": {"cart": [{"kind": "constant", "rate": 1.0}]}}, "load.cart: unknown node 'cart'"),
        ({"load": {"gateway": [{"kind": "ramp", "to": 5.0, "duration": 10}]}}, "load.gateway[0].from: Field required"),
        ({"load": {"gateway": {"kind": "spike", "at": 1, "duration": 0, "extra": 1}}}, "load.gateway[0].duration"),
        ({"load": {"gateway": [{"kind": "sawtooth"}]}}, "load.gateway[0]: Input tag 'sawtooth' found"),
        (
            {"faults": [{"kind": "replicas_lost", "node": "db", "at": 5, "replicas": 1}]},
            "faults[0].node: unknown node 'db'",
        ),
        (
            {"faults": [{"kind": "bad_release", "node": "checkout", "at": 5, "error_rate": 1.5}]},
            "faults[0].error_rate: Input should be less than or equal to 1",
        ),
        (
            {"faults": [{"kind": "capacity_factor", "node": "checkout", "at": 5, "factor": 0}]},
            "faults[0].factor: Input should be greater than 0",
        ),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_scenarios_name_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(base(**overrides))
    assert message in str(info.value)


def test_min_above_max_is_named() -> None:
    nodes = [{"id": "gateway", "replicas": 4, "capacity_per_replica": 1.0, "min_replicas": 5, "max_replicas": 3}]
    with pytest.raises(ScenarioError, match=r"nodes\[0\] \('gateway'\): max_replicas 3 < min_replicas 5"):
        parse_scenario(base(nodes=nodes, edges=[], load={}))


def test_load_scenario_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("twin_id: shop\nstart: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"missing\.yaml"):
        load_scenario(tmp_path / "missing.yaml")
    bad.write_text("- just a list\n")
    with pytest.raises(ScenarioError, match="must be a YAML mapping"):
        load_scenario(bad)


def test_defaults() -> None:
    sc = parse_scenario(base())
    assert sc.seed == 0 and sc.noise == 0.0
    assert sc.node("checkout").max_replicas == 2  # cannot scale unless the scenario says so
    assert sc.node("gateway").max_replicas == 10


# ---- profiles ----------------------------------------------------------------------------------


def test_profiles_are_piecewise_as_documented() -> None:
    ramp = RampLoad.model_validate({"from": 100, "to": 300, "start": 10, "duration": 20})
    assert [ramp.rate_at(t) for t in (0, 10, 20, 30, 99)] == [100, 100, 200, 300, 300]
    step = StepLoad.model_validate({"at": 5, "to": 50})
    assert [step.rate_at(t) for t in (4.9, 5, 6)] == [0, 50, 50]
    spike = SpikeLoad(at=10, duration=5, extra=80)
    assert [spike.rate_at(t) for t in (9, 10, 14.9, 15)] == [0, 80, 80, 0]
    day = DiurnalLoad(base=500, amplitude=200, phase=3600)
    assert day.rate_at(3600) == pytest.approx(500)
    assert day.rate_at(3600 + 21600) == pytest.approx(700)
    assert day.rate_at(3600 + 64800) == pytest.approx(300)


def test_profiles_sum_and_floor_at_zero() -> None:
    sc = parse_scenario(
        base(
            nodes=[{"id": "gateway", "replicas": 4, "capacity_per_replica": 250.0, "external_arrival_rate": 10.0}],
            edges=[],
            load={
                "gateway": [
                    {"kind": "constant", "rate": 100},
                    {"kind": "spike", "at": 5, "duration": 5, "extra": 50},
                    {"kind": "diurnal", "base": 0, "amplitude": 1000, "period": 40, "phase": 20},
                ]
            },
        )
    )
    sim = Simulator(sc)
    rates = {round((s.observed_at - sc.start).total_seconds()): s.node("gateway").external_arrival_rate
             for s in sim.run(40)}  # fmt: skip
    # base 10 + constant 100 + spike 50 on [5, 10) + 1000 sin(2π (t - 20) / 40), floored at 0.
    assert rates[20] == pytest.approx(110.0)
    assert rates[30] == pytest.approx(1110.0)
    assert rates[40] == pytest.approx(110.0)
    assert rates[10] == 0.0  # 110 - 1000, floored
    assert rates[21] == pytest.approx(110.0 + 1000.0 * math.sin(2 * math.pi * (21 - 20) / 40))


# ---- shipped scenarios -------------------------------------------------------------------------


def shipped() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))


def test_the_expected_scenarios_ship() -> None:
    names = {p.stem for p in shipped()}
    assert {"single_saturated", "hidden_downstream", "slow_ramp", "diurnal_day", "bad_release"} <= names


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_every_scenario_loads_and_runs(path: Path) -> None:
    sc = load_scenario(path)
    sim = Simulator(sc)
    snaps = sim.run(min(sc.duration or 600, 600), dt=1.0, record_every=60)
    assert snaps
    for snap in snaps:
        assert snap.twin_id == sc.twin_id
        for node in snap.nodes:
            assert node.metrics.throughput is not None
            assert node.metrics.throughput <= node.capacity + 1e-6 or sc.noise > 0


def at_start(name: str) -> tuple[Simulator, dict[str, float]]:
    sim = Simulator(load_scenario(SCENARIOS / f"{name}.yaml"))
    flow = snapshot_flow(sim.snapshot())
    return sim, {n: flow.utilization(n) for n in flow.order}


def test_single_saturated() -> None:
    _, rho = at_start("single_saturated")
    assert [n for n, r in rho.items() if r >= 1] == ["search"]
    assert all(r < DEFAULT_TARGET_UTILIZATION for n, r in rho.items() if n != "search")


def test_hidden_downstream() -> None:
    sim, rho = at_start("hidden_downstream")
    snap = sim.run(60)[-1]
    checkout = snap.node("checkout")
    assert rho["gateway"] >= 1 and rho["checkout"] >= 1
    assert checkout.metrics.utilization is not None and checkout.metrics.utilization < DEFAULT_TARGET_UTILIZATION
    # Scaling only the gateway makes checkout saturate...
    only_gateway = what_if(sim, [ScaleAction(node="gateway", replicas=8)], seconds=60)[-1]
    assert (only_gateway.node("checkout").metrics.queue_depth or 0) > 0
    assert only_gateway.node("checkout").metrics.utilization == pytest.approx(1.0)
    # ...while the optimal scale-only plan is feasible and fixes both.
    plan = optimal_replicas(snap)
    flow = snapshot_flow(snap, replicas=plan)
    assert plan["gateway"] <= snap.node("gateway").max_replicas
    assert plan["checkout"] <= snap.node("checkout").max_replicas
    assert max(flow.utilization(n) for n in flow.order) <= DEFAULT_TARGET_UTILIZATION
    fixed = what_if(sim, [ScaleAction(node=n, replicas=r) for n, r in plan.items() if r != snap.node(n).replicas], 120)[
        -1
    ]
    assert all((n.metrics.queue_depth or 0) == 0 for n in fixed.nodes)


def test_slow_ramp_crosses_target_between_20_and_40_minutes() -> None:
    sim, rho = at_start("slow_ramp")
    assert max(rho.values()) < DEFAULT_TARGET_UTILIZATION
    crossed = None
    for snap in sim.run(3600, record_every=30):
        flow = snapshot_flow(snap)
        if max(flow.utilization(n) for n in flow.order) >= DEFAULT_TARGET_UTILIZATION:
            crossed = (snap.observed_at - sim.scenario.start).total_seconds()
            break
    assert crossed is not None and 20 * 60 <= crossed <= 40 * 60


def test_diurnal_day_faults_bite_at_nine_and_three() -> None:
    sc = load_scenario(SCENARIOS / "diurnal_day.yaml")
    assert sc.duration == 86400 and 6 <= len(sc.nodes) <= 10
    sim = Simulator(sc.model_copy(update={"noise": 0.0}))
    worst: dict[int, float] = {}
    for snap in sim.run(86400, dt=5.0, record_every=900):
        hour = int((snap.observed_at - sc.start).total_seconds() // 3600)
        flow = snapshot_flow(snap)
        worst[hour] = max(worst.get(hour, 0.0), max(flow.utilization(n) for n in flow.order))
    assert max(worst[h] for h in range(9)) < 1.0  # healthy until the first fault
    assert worst[9] >= DEFAULT_TARGET_UTILIZATION
    assert worst[15] >= 1.0


def test_bad_release_is_not_load() -> None:
    sim, rho = at_start("bad_release")
    assert DEFAULT_TARGET_UTILIZATION <= rho["recommendations"] < 1.0
    snap = sim.run(600)[-1]
    rec = snap.node("recommendations").metrics
    assert rec.error_rate == pytest.approx(0.25)
    assert rec.latency_p95_ms is not None and rec.latency_p95_ms > 800
    scaled = what_if(sim, [ScaleAction(node="recommendations", replicas=10)], seconds=120)[-1]
    still = scaled.node("recommendations").metrics
    assert still.error_rate == pytest.approx(0.25)
    assert still.latency_p95_ms is not None and still.latency_p95_ms > 800
    assert math.isfinite(still.latency_p95_ms)
