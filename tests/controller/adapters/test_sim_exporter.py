"""The simulator as an exporter: its exposition, counters at the simulator's rates, hidden series, signed
actions, a real Prometheus scraping it, and `twinops twin serve-metrics`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from controller.adapters.actuators import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookActuator,
    sign_request,
)
from controller.adapters.live_twin import live_scenario
from controller.adapters.sim_exporter import FAMILIES, SimulatorExporter
from controller.cli import app
from tests.promstack import prometheus_server, requires_prometheus, wait_for_query
from twin.actions import ScaleAction
from twin.contract import parse_snapshot
from twin.scenario import load_scenario
from twin.simulator import Simulator

SCENARIOS = Path(__file__).resolve().parents[3] / "twin" / "scenarios"
SECRET = "exporter-test-secret"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

LABELS = {
    "http_requests_received": ("counter", {"service"}),
    "http_requests": ("counter", {"service", "code"}),
    "ingress_requests": ("counter", {"service"}),
    "http_client_requests": ("counter", {"service", "target"}),
    "service_utilization_ratio": ("gauge", {"service"}),
    "queue_depth": ("gauge", {"service"}),
    "http_request_duration_seconds": ("gauge", {"service", "quantile"}),
    "kube_deployment_spec_replicas": ("gauge", {"deployment"}),
    "kube_deployment_status_replicas_available": ("gauge", {"deployment"}),
}


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def simulator(name: str, start: datetime | None = None) -> Simulator:
    """A scenario from twin/scenarios started at `start` (default: now)."""
    return Simulator(live_scenario(load_scenario(SCENARIOS / name), start or datetime.now(UTC)))


def parse(text: str) -> Series:
    """Every sample of an exposition by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


def has(series: Series, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in series


def within_10_percent(expected: float) -> Callable[[list[dict[str, Any]]], bool]:
    """A `wait_for_query` condition: one sample, within 10 % of `expected`."""
    return lambda result: len(result) == 1 and abs(float(result[0]["value"][1]) / expected - 1) < 0.1


def signed(body: bytes, key: str, secret: str) -> dict[str, str]:
    """Headers of a webhook request for `body` under `key`, signed now with `secret`."""
    stamp = str(int(time.time()))
    return {IDEMPOTENCY_HEADER: key, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign_request(secret, stamp, body)}


@pytest.fixture
def exporter() -> Iterator[SimulatorExporter]:
    """The demo estate (hidden_downstream) served on a free port, actions signed with SECRET."""
    with SimulatorExporter(simulator("hidden_downstream.yaml"), secret=SECRET) as running:
        yield running


def test_every_family_is_exposed_with_its_labels(exporter: SimulatorExporter) -> None:
    response = httpx.get(exporter.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert set(families) == set(LABELS)
    assert {f"{name}_total" if kind == "counter" else name for name, (kind, _) in LABELS.items()} == set(FAMILIES)
    nodes = {"gateway", "catalog", "checkout", "payments", "orders-db"}
    for name, (kind, labels) in LABELS.items():
        family = families[name]
        assert family.type == kind, name
        assert all(set(sample.labels) == labels for sample in family.samples), name
        key = "deployment" if "deployment" in labels else "service"
        if name != "http_client_requests":  # per edge: checked below
            assert {sample.labels[key] for sample in family.samples} == nodes, name
    series = parse(response.text)
    assert value(series, "http_request_duration_seconds", service="gateway", quantile="0.95") > 0
    assert {
        (s["service"], s["target"]) for s in (dict(k[1]) for k in series if k[0] == "http_client_requests_total")
    } == {
        ("gateway", "catalog"),
        ("gateway", "checkout"),
        ("checkout", "payments"),
        ("checkout", "orders-db"),
    }


def test_counters_integrate_the_simulators_rates_over_simulated_time() -> None:
    clock = Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    sim = simulator("hidden_downstream.yaml", clock.now)
    exporter = SimulatorExporter(sim, clock=clock)
    clock.now += timedelta(seconds=3)
    before = parse(exporter.exposition().decode())
    clock.now += timedelta(seconds=2.5)  # three steps: 1 + 1 + 0.5 s
    after = parse(exporter.exposition().decode())
    assert sim.now == clock.now
    snap = sim.snapshot()  # constant load: the rates of every step since t = 0

    def grew(name: str, **labels: str) -> float:
        return (value(after, name, **labels) - value(before, name, **labels)) / 2.5

    for node in snap.nodes:
        m = node.metrics
        assert m.arrival_rate is not None and m.throughput is not None and m.error_rate is not None
        assert grew("http_requests_received_total", service=node.id) == pytest.approx(m.arrival_rate)
        assert grew("http_requests_total", service=node.id, code="200") == pytest.approx(m.throughput)
        assert grew("http_requests_total", service=node.id, code="500") == pytest.approx(0.0)
        assert grew("ingress_requests_total", service=node.id) == pytest.approx(node.external_arrival_rate)
        assert value(after, "queue_depth", service=node.id) == pytest.approx(m.queue_depth)
        assert value(after, "kube_deployment_status_replicas_available", deployment=node.id) == node.replicas
    for edge in snap.edges:
        sent = snap.node(edge.source).metrics.throughput
        assert sent is not None
        assert grew("http_client_requests_total", service=edge.source, target=edge.target) == pytest.approx(
            edge.ratio * sent
        )
    # The saturated gateway: 1200 rps arrive, 800 are served; 5.5 s since the start.
    assert value(after, "http_requests_received_total", service="gateway") == pytest.approx(1200 * 5.5)
    assert value(after, "http_requests_total", service="gateway", code="200") == pytest.approx(800 * 5.5)


def test_errors_are_counted_under_code_500() -> None:
    clock = Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    sim = simulator("bad_release.yaml", clock.now)
    exporter = SimulatorExporter(sim, clock=clock)
    clock.now += timedelta(seconds=sim.scenario.faults[0].at + 10)
    before = parse(exporter.exposition().decode())
    clock.now += timedelta(seconds=2)
    after = parse(exporter.exposition().decode())
    node = sim.snapshot().node(sim.scenario.faults[0].node)
    assert node.metrics.error_rate and node.metrics.throughput
    failed = value(after, "http_requests_total", service=node.id, code="500") - value(
        before, "http_requests_total", service=node.id, code="500"
    )
    assert failed / 2 == pytest.approx(node.metrics.throughput * node.metrics.error_rate)


def test_counters_grow_at_the_simulators_rates_in_wall_clock_time(exporter: SimulatorExporter) -> None:
    first, t0 = parse(httpx.get(exporter.url + "/metrics").text), time.monotonic()
    time.sleep(3.0)
    second, t1 = parse(httpx.get(exporter.url + "/metrics").text), time.monotonic()
    grown = value(second, "ingress_requests_total", service="gateway") - value(
        first, "ingress_requests_total", service="gateway"
    )
    # Over real HTTP each scrape's moment is known to within its round trip: the exact integration is
    # the hand-clocked test's; here, that the wall clock drives it.
    assert grown / (t1 - t0) == pytest.approx(1200, rel=0.1)
    assert value(second, "ingress_requests_total", service="checkout") == 0.0


def test_a_metric_the_simulator_does_not_know_has_no_series() -> None:
    # `idle` has no replicas and no load: no utilization, no latency (unknown, not zero).
    snap = parse_snapshot(
        {
            "schema": "twin.v1",
            "twin_id": "t",
            "observed_at": "2026-12-01T12:00:00Z",
            "nodes": [
                {"id": "web", "replicas": 2, "capacity_per_replica": 100.0, "external_arrival_rate": 50.0},
                {"id": "idle", "replicas": 0, "capacity_per_replica": 100.0, "min_replicas": 0},
            ],
            "edges": [],
        }
    )
    series = parse(SimulatorExporter(Simulator.from_snapshot(snap)).exposition().decode())
    assert not has(series, "service_utilization_ratio", service="idle")
    assert not has(series, "http_request_duration_seconds", service="idle", quantile="0.95")
    assert value(series, "queue_depth", service="idle") == 0.0
    assert value(series, "kube_deployment_status_replicas_available", deployment="idle") == 0.0
    assert value(series, "service_utilization_ratio", service="web") == pytest.approx(0.25)


def test_a_hidden_series_leaves_the_scrape_until_shown(exporter: SimulatorExporter) -> None:
    exporter.hide("orders-db", "ingress_requests_total")
    exporter.hide("checkout", "kube_deployment_status_replicas_available")
    hidden = parse(httpx.get(exporter.url + "/metrics").text)
    assert not has(hidden, "ingress_requests_total", service="orders-db")
    assert not has(hidden, "kube_deployment_status_replicas_available", deployment="checkout")
    assert has(hidden, "ingress_requests_total", service="gateway")
    assert has(hidden, "http_requests_total", service="orders-db", code="200")
    exporter.show("orders-db", "ingress_requests_total")
    exporter.show("checkout", "kube_deployment_status_replicas_available")
    shown = parse(httpx.get(exporter.url + "/metrics").text)
    assert value(shown, "ingress_requests_total", service="orders-db") == 0.0
    assert value(shown, "kube_deployment_status_replicas_available", deployment="checkout") == 4
    with pytest.raises(ValueError, match="not one of"):
        exporter.hide("orders-db", "ingress_requests")
    with pytest.raises(ValueError, match="'nope'"):
        exporter.hide("nope", "queue_depth")


async def test_a_signed_action_applies_once_and_a_repeated_key_gets_the_original_undo(
    exporter: SimulatorExporter,
) -> None:
    async with WebhookActuator(exporter.url + "/actions", SECRET, timeout=5) as actuator:
        outcome = await actuator.apply("run-1/step/0", ScaleAction(node="checkout", replicas=6))
        assert outcome.applied and outcome.undo == ScaleAction(node="checkout", replicas=4)
        series = parse((await httpx.AsyncClient().get(exporter.url + "/metrics")).text)
        assert value(series, "kube_deployment_spec_replicas", deployment="checkout") == 6
        assert value(series, "kube_deployment_status_replicas_available", deployment="checkout") == 6
        again = await actuator.apply("run-1/step/0", ScaleAction(node="checkout", replicas=6))
        assert not again.applied and again.undo == ScaleAction(node="checkout", replicas=4)
    assert exporter.actions.applied["run-1/step/0"] == 1 and exporter.actions.requests["run-1/step/0"] == 2

    body = json.dumps({"action": {"type": "scale", "node": "checkout", "replicas": 5}}).encode()
    async with httpx.AsyncClient(base_url=exporter.url) as client:
        repeated = await client.post("/actions", content=body, headers=signed(body, "run-1/step/0", SECRET))
        assert repeated.status_code == 409
        assert repeated.json()["undo"] == {"type": "scale", "node": "checkout", "replicas": 4}
        forged = await client.post("/actions", content=body, headers=signed(body, "run-2/step/0", "not-the-secret"))
        assert forged.status_code == 401 and "bad signature" in forged.json()["detail"]
        unsigned = await client.post("/actions", content=body, headers={IDEMPOTENCY_HEADER: "run-3/step/0"})
        assert unsigned.status_code == 401 and SIGNATURE_HEADER in unsigned.json()["detail"]
    assert exporter.simulator.provisioned()["checkout"] == 6


def test_snapshot_and_healthz(exporter: SimulatorExporter) -> None:
    snap = parse_snapshot(httpx.get(exporter.url + "/snapshot").json())
    assert snap.twin_id == "shop" and abs((datetime.now(UTC) - snap.observed_at).total_seconds()) < 2
    assert httpx.get(exporter.url + "/healthz").json() == {"status": "ok", "twin_id": "shop"}


@requires_prometheus
def test_prometheus_scraping_the_exporter_sees_the_simulators_rates(
    exporter: SimulatorExporter, tmp_path: Path
) -> None:
    # Most of this test's ~10 s is Prometheus: its first scrape comes ~5 s after it starts, and
    # rate() over [5s] reads low until the window holds five scrapes.
    truth = exporter.snapshot()
    target = exporter.url.removeprefix("http://")
    with prometheus_server(tmp_path / "prom", targets=[target], scrape_interval="1s") as prom:
        for node in ("checkout", "gateway"):
            throughput = truth.node(node).metrics.throughput
            assert throughput
            wait_for_query(
                prom, f'sum(rate(http_requests_total{{service="{node}"}}[5s]))', within_10_percent(throughput)
            )
        available = prom.query("kube_deployment_status_replicas_available")
        assert {s["metric"]["deployment"]: float(s["value"][1]) for s in available} == {
            n.id: n.replicas for n in truth.nodes
        }


def test_serve_metrics_names_a_missing_or_broken_scenario(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["twin", "serve-metrics", str(tmp_path / "nope.yaml"), "--port", "0"])
    assert missing.exit_code == 2 and "nope.yaml" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("twin_id: x\nnodes: [\n")
    result = runner.invoke(app, ["twin", "serve-metrics", str(broken), "--port", "0"])
    assert result.exit_code == 2 and "broken.yaml" in result.output and "Traceback" not in result.output


def test_serve_metrics_serves_until_ctrl_c() -> None:
    twinops = Path(sys.executable).parent / "twinops"
    process = subprocess.Popen(
        [str(twinops), "twin", "serve-metrics", "hidden_downstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        series = parse(httpx.get(url + "/metrics", timeout=5).text)
        assert value(series, "kube_deployment_spec_replicas", deployment="gateway") == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read().splitlines()[-1] == "stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
