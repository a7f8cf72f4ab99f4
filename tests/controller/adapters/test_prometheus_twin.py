"""PrometheusSource against a real Prometheus scraping the simulator exporter (no mock of Prometheus).

One exporter (twin/scenarios/hidden_downstream.yaml in wall-clock time) and one Prometheus
(1 s scrapes) serve the whole module; the demo twin model (batched: one query per value for
every node) and `PER_NODE_MODEL` (the same templates per node, the format before batching) run
with `range: 5s` so rates settle within seconds. Tests that hide a series put it back before they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from typer.testing import CliRunner

from agents import AgentState, Desires, FindingKind, decide, detect, revise
from controller.adapters.prometheus_twin import PrometheusSource
from controller.adapters.sim_exporter import SimulatorExporter
from controller.adapters.twin_model import TwinModel, parse_twin_model
from controller.app.worker import make_twin_source
from controller.cli import app
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from tests.promstack import PrometheusServer, free_port, prometheus_server, requires_prometheus
from twin.actions import ScaleAction
from twin.contract import Snapshot
from twin.sources import TwinSource, TwinSourceError
from workflows.activities import TWIN_UNAVAILABLE, AgentActivities

ROOT = Path(__file__).resolve().parents[3]
DEMO_MODEL = ROOT / "deploy" / "prometheus" / "demo-twin-model.yaml"
SCENARIO = ROOT / "twin" / "scenarios" / "hidden_downstream.yaml"
RATE_TOLERANCE = 0.10
NODES = ("gateway", "catalog", "checkout", "payments", "orders-db")


PER_NODE_MODEL = """\
twin_id: shop
range: 1m
queries:
  replicas: kube_deployment_status_replicas_available{deployment="{{node}}"}
  external_arrival_rate: sum(rate(ingress_requests_total{service="{{node}}"}[{{range}}]))
  arrival_rate: sum(rate(http_requests_received_total{service="{{node}}"}[{{range}}]))
  throughput: sum(rate(http_requests_total{service="{{node}}"}[{{range}}]))
  # No 5xx series at all means no server errors; no completions at all leaves the rate unknown (0/0).
  error_rate: >-
    (sum(rate(http_requests_total{service="{{node}}",code=~"5.."}[{{range}}])) or vector(0))
    / sum(rate(http_requests_total{service="{{node}}"}[{{range}}]))
  utilization: service_utilization_ratio{service="{{node}}"}
  queue_depth: queue_depth{service="{{node}}"}
  latency_p95_ms: http_request_duration_seconds{service="{{node}}",quantile="0.95"} * 1000
  # Requests sent to the target per request completed at the source.
  ratio: >-
    sum(rate(http_client_requests_total{service="{{source}}",target="{{target}}"}[{{range}}]))
    / sum(rate(http_requests_total{service="{{source}}"}[{{range}}]))
nodes:
  - {id: gateway, kind: service, capacity_per_replica: 200.0, min_replicas: 2, max_replicas: 20,
     tags: {team: edge, tier: critical}}
  - {id: catalog, kind: service, capacity_per_replica: 150.0, min_replicas: 2, max_replicas: 20,
     tags: {team: discovery, tier: standard}}
  - {id: checkout, kind: service, capacity_per_replica: 110.0, min_replicas: 2, max_replicas: 12,
     tags: {team: payments, tier: critical}}
  - {id: payments, kind: service, capacity_per_replica: 100.0, min_replicas: 2, max_replicas: 16,
     tags: {team: payments, tier: critical}}
  - {id: orders-db, kind: database, capacity_per_replica: 500.0, min_replicas: 3, max_replicas: 3,
     tags: {team: payments, tier: critical}}
edges:
  - {source: gateway, target: catalog}
  - {source: gateway, target: checkout}
  - {source: checkout, target: payments}
  - {source: checkout, target: orders-db}
"""
"""The demo model as it was before batched queries: every template per node (`{{node}}`, `{{source}}`)."""


def demo_model(**replace: str) -> TwinModel:
    """The demo model with 5 s rate windows (and any other text replaced)."""
    return _model(DEMO_MODEL.read_text(), str(DEMO_MODEL), replace)


def per_node_model(**replace: str) -> TwinModel:
    """`PER_NODE_MODEL` with 5 s rate windows (and any other text replaced)."""
    return _model(PER_NODE_MODEL, "per-node.yaml", replace)


def _model(text: str, file: str, replace: dict[str, str]) -> TwinModel:
    text = text.replace("range: 1m", "range: 5s")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_twin_model(text, file)


MODELS = {"batched": demo_model, "per-node": per_node_model}


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorExporter, PrometheusServer]]:
    with SimulatorExporter.from_file(SCENARIO) as exporter:
        target = exporter.url.removeprefix("http://")
        with prometheus_server(tmp_path_factory.mktemp("prom"), targets=[target], scrape_interval="1s") as prom:
            yield exporter, prom


def take(source: PrometheusSource) -> Snapshot:
    return asyncio.run(source.latest())


def settled(source: PrometheusSource, until: Callable[[Snapshot], bool], within: float = 30.0) -> Snapshot:
    """Poll `latest` until `until(snapshot)`; AssertionError with the last answer after `within` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            snapshot = take(source)
            last = snapshot
            if until(snapshot):
                return snapshot
        except TwinSourceError as exc:  # before the first scrapes, replicas are not there yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"not settled within {within:.0f}s; last: {last}")


def close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= RATE_TOLERANCE * max(abs(b), 1.0)


def matches_truth(snap: Snapshot, truth: Snapshot) -> bool:
    if snap.quality or [n.id for n in snap.nodes] != [n.id for n in truth.nodes]:
        return False
    for mine, real in zip(snap.nodes, truth.nodes, strict=True):
        if mine.replicas != real.replicas or not close(mine.external_arrival_rate, real.external_arrival_rate):
            return False
        if not all(close(getattr(mine.metrics, m), getattr(real.metrics, m)) for m in ("arrival_rate", "throughput")):
            return False
    ratios = {(e.source, e.target): e.ratio for e in truth.edges}
    return {(e.source, e.target) for e in snap.edges} == set(ratios) and all(
        close(e.ratio, ratios[(e.source, e.target)]) for e in snap.edges
    )


def source_of(prom: PrometheusServer, model: TwinModel | None = None, **options: Any) -> PrometheusSource:
    return PrometheusSource(
        prom.url, model or demo_model(), timeout_seconds=options.pop("timeout_seconds", 5.0), **options
    )


def scaled_nodes(snapshot: Snapshot) -> set[str]:
    decision = decide(AgentState(), snapshot, Desires())
    return {a.node for p in decision.proposals for a in p.actions if isinstance(a, ScaleAction)}


@contextlib.contextmanager
def hidden(exporter: SimulatorExporter, node: str, family: str) -> Iterator[None]:
    exporter.hide(node, family)
    try:
        yield
    finally:
        exporter.show(node, family)


# ---- with a real Prometheus ------------------------------------------------------------------


@requires_prometheus
def test_the_source_builds_the_snapshot_the_simulator_holds(estate: tuple[SimulatorExporter, PrometheusServer]) -> None:
    exporter, prom = estate
    source = source_of(prom)
    assert isinstance(source, TwinSource)
    snap = settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    truth = exporter.snapshot()
    assert snap.twin_id == truth.twin_id
    assert [(n.id, n.kind, n.capacity_per_replica, n.min_replicas, n.max_replicas, n.tags) for n in snap.nodes] == [
        (n.id, n.kind, n.capacity_per_replica, n.min_replicas, n.max_replicas, n.tags) for n in truth.nodes
    ]
    for mine, real in zip(snap.nodes, truth.nodes, strict=True):  # gauges are read as they are
        assert mine.metrics.utilization == pytest.approx(real.metrics.utilization, rel=RATE_TOLERANCE)
        assert mine.metrics.error_rate == pytest.approx(real.metrics.error_rate, abs=0.01)
        assert mine.metrics.latency_p95_ms is not None and mine.metrics.queue_depth is not None


@requires_prometheus
def test_the_batched_model_builds_the_snapshot_the_per_node_model_builds(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    exporter, prom = estate
    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    # One instant, a little in the past (every scrape before it is in): the same data for every source.
    at = datetime.now(UTC) - timedelta(seconds=2)
    per_node = take(source_of(prom, per_node_model(), clock=lambda: at))
    for source in (source_of(prom, clock=lambda: at), source_of(prom, clock=lambda: at, batch=2)):
        batched = take(source)
        assert batched.observed_at == per_node.observed_at and batched.quality == per_node.quality == []
        assert [n.model_dump(exclude={"metrics"}) for n in batched.nodes] == [
            n.model_dump(exclude={"metrics"}) for n in per_node.nodes
        ]
        for mine, theirs in zip(batched.nodes, per_node.nodes, strict=True):
            assert mine.metrics.model_dump() == pytest.approx(theirs.metrics.model_dump(), rel=1e-9), mine.id
        assert [(e.source, e.target) for e in batched.edges] == [(e.source, e.target) for e in per_node.edges]
        assert [e.ratio for e in batched.edges] == pytest.approx([e.ratio for e in per_node.edges], rel=1e-9)
    # batch=2: every value in 3 queries (2 + 2 + 1 nodes), the ratios in 1 (2 sources).
    assert len(source_of(prom, batch=2).queries) == 8 * 3 + 1


@requires_prometheus
def test_a_saturated_node_becomes_a_proposal(estate: tuple[SimulatorExporter, PrometheusServer]) -> None:
    exporter, prom = estate
    activities = AgentActivities(source_of(prom), Desires())
    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    snap = asyncio.run(activities.take_snapshot())
    findings = detect(revise(None, snap)).findings
    assert any(f.kind is FindingKind.SATURATED and f.node == "gateway" for f in findings)
    assert {"gateway", "checkout"} <= scaled_nodes(snap)  # checkout hidden behind the gateway: found too


@requires_prometheus
def test_a_series_that_disappears_is_a_data_quality_finding_and_no_action_there(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    exporter, prom = estate
    source = source_of(prom)
    settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    with hidden(exporter, "checkout", "service_utilization_ratio"):
        snap = settled(source, lambda s: bool(s.quality))
        (issue,) = snap.quality
        assert (issue.node, issue.metric, issue.problem) == ("checkout", "utilization", "missing")
        assert "service_utilization_ratio" in issue.detail
        assert snap.node("checkout").metrics.utilization is None  # unset, not guessed
        findings = detect(revise(None, snap)).findings
        assert any(f.kind is FindingKind.DATA_QUALITY and f.node == "checkout" for f in findings)
        assert "checkout" not in scaled_nodes(snap)


@requires_prometheus
def test_an_unmeasurable_edge_ratio_is_left_out_and_its_target_untrusted(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    exporter, prom = estate
    source = source_of(prom)
    settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    with hidden(exporter, "checkout", "http_client_requests_total"):
        snap = settled(source, lambda s: {(q.node, q.metric) for q in s.quality} >= {("payments", "ratio")})
    assert {(q.node, q.metric, q.problem) for q in snap.quality} == {
        ("payments", "ratio", "missing"),
        ("orders-db", "ratio", "missing"),
    }
    assert {(e.source, e.target) for e in snap.edges} == {("gateway", "catalog"), ("gateway", "checkout")}
    beliefs = revise(None, snap)
    assert not beliefs.node("payments").trusted and not beliefs.node("orders-db").trusted


@requires_prometheus
def test_several_series_for_one_node_are_ambiguous_not_summed(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    _, prom = estate
    # Without sum by (service): two series per node in the batched answer, one per status code.
    summed = '  throughput: sum by (service) (rate(http_requests_total{service=~"{{nodes}}"}[{{range}}]))'
    model = demo_model(**{summed: '  throughput: rate(http_requests_total{service=~"{{nodes}}"}[{{range}}])'})
    snap = settled(source_of(prom, model), lambda s: len(s.quality) == len(s.nodes))
    assert {(q.node, q.metric, q.problem) for q in snap.quality} == {(n, "throughput", "ambiguous") for n in NODES}
    issue = next(q for q in snap.quality if q.node == "gateway")
    assert "returned 2 series" in issue.detail and "code='200'" in issue.detail and "code='500'" in issue.detail
    assert "service='gateway'" in issue.detail and "service='catalog'" not in issue.detail  # its own series only
    assert snap.node("gateway").metrics.throughput is None
    # The same per node.
    model = per_node_model(**{'  throughput: sum(rate(http_requests_total{service="{{node}}"}[{{range}}]))': (
        '  throughput: rate(http_requests_total{service="{{node}}"}[{{range}}])'
    )})  # fmt: skip
    snap = settled(source_of(prom, model), lambda s: len(s.quality) == len(s.nodes))
    assert {(q.node, q.metric, q.problem) for q in snap.quality} == {(n, "throughput", "ambiguous") for n in NODES}


@requires_prometheus
@pytest.mark.parametrize("form", MODELS)
def test_missing_replicas_mean_no_snapshot_naming_node_and_query(
    estate: tuple[SimulatorExporter, PrometheusServer], form: str
) -> None:
    exporter, prom = estate
    source = source_of(prom, MODELS[form]())
    settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    with hidden(exporter, "payments", "kube_deployment_status_replicas_available"):
        deadline = time.monotonic() + 15
        while True:
            try:
                take(source)
            except TwinSourceError as exc:
                message = str(exc)
                break
            assert time.monotonic() < deadline, "replicas never went missing"
            time.sleep(0.5)
        # In the history, the steps without the replicas are left out (no snapshot without replicas).
        assert len(asyncio.run(source.history(window_seconds=4, step_seconds=1))) < 5
    assert "node 'payments' replicas" in message and "no snapshot without replicas" in message
    if form == "per-node":
        assert 'kube_deployment_status_replicas_available{deployment="payments"}' in message
    else:  # the template, not its regex of every node; and which series was not there
        assert 'kube_deployment_status_replicas_available{deployment=~"{{nodes}}"}\' by deployment' in message
        assert "returned no series with deployment='payments'" in message
        assert "gateway|catalog" not in message


@requires_prometheus
def test_a_query_prometheus_refuses_is_no_snapshot_naming_it(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    _, prom = estate
    model = demo_model(**{"  queue_depth: queue_depth{service=": "  queue_depth: sum(queue_depth{service="})
    with pytest.raises(TwinSourceError) as info:
        take(source_of(prom, model))
    assert "HTTP 400" in str(info.value) and "queue_depth" in str(info.value) and "parse error" in str(info.value)


@requires_prometheus
def test_queries_run_concurrently_within_the_bound(estate: tuple[SimulatorExporter, PrometheusServer]) -> None:
    exporter, prom = estate

    class Counting(httpx.AsyncHTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self.now = self.most = self.calls = 0
            self.requests: list[httpx.Request] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
            try:
                return await super().handle_async_request(request)
            finally:
                self.now -= 1

    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    counting = Counting()
    take(source_of(prom, per_node_model(), concurrency=3, transport=counting))
    # Per node: every value of every node, every edge ratio; several in flight, never more than the bound.
    assert counting.calls == 5 * 8 + 4
    assert 1 < counting.most <= 3
    # Batched: one query per value for all nodes, one for every edge ratio.
    counting = Counting()
    take(source_of(prom, concurrency=3, transport=counting))
    assert counting.calls == 8 + 1 and 1 < counting.most <= 3
    # Sent as form bodies: a batched regex of a large estate does not fit a URL.
    assert {(r.method, r.headers["content-type"]) for r in counting.requests} == {
        ("POST", "application/x-www-form-urlencoded")
    }


@requires_prometheus
def test_history_is_one_snapshot_per_step_from_range_queries(
    estate: tuple[SimulatorExporter, PrometheusServer],
) -> None:
    exporter, prom = estate
    source = source_of(prom)
    settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    # Polled: a step of the window at which a test before this one hid some node's replicas is left out.
    deadline = time.monotonic() + 15
    while len(history := asyncio.run(source.history(window_seconds=4, step_seconds=1))) < 5:
        assert time.monotonic() < deadline, f"{len(history)} snapshots in a 4 s window at 1 s steps"
        time.sleep(0.5)
    assert len(history) == 5
    times = [s.observed_at.timestamp() for s in history]
    assert times == sorted(times) and all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(times))
    assert all(s.twin_id == "shop" and len(s.nodes) == 5 for s in history)
    gateway = history[-1].node("gateway")
    assert close(gateway.external_arrival_rate, 1200.0)


@requires_prometheus
def test_prometheus_stopped_means_no_snapshot_and_no_action(tmp_path: Path) -> None:
    with SimulatorExporter.from_file(SCENARIO) as exporter:
        target = exporter.url.removeprefix("http://")
        with prometheus_server(tmp_path / "prom", targets=[target], scrape_interval="1s") as prom:
            source = source_of(prom)
            settled(source, lambda s: s.node("gateway").replicas == 4)
            prom.stop()
            with pytest.raises(TwinSourceError, match=r"Prometheus at http://127\.0\.0\.1:\d+ unreachable"):
                take(source)
            # The agent loop's snapshot activity fails with the type its retry policy knows: no tick, no action.
            with pytest.raises(ApplicationError) as info:
                asyncio.run(AgentActivities(source, Desires()).take_snapshot())
            assert info.value.type == TWIN_UNAVAILABLE


# ---- without Prometheus ----------------------------------------------------------------------


def test_a_prometheus_that_does_not_answer_in_time_is_no_snapshot() -> None:
    # A socket that accepts connections and never answers: the deadline, not a hang.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = PrometheusSource(url, demo_model(), timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(TwinSourceError, match=r"not answered within 0\.5s; no snapshot"):
            take(source)
        assert time.monotonic() - started < 10.0  # the deadline ended it, not a hang (loose: CI is loaded)


def settings(**env: Any) -> Settings:
    return Settings(**{"twin_source": "prometheus", **env})


def test_make_twin_source_names_the_missing_setting() -> None:
    with pytest.raises(ConfigurationError, match="needs TWINOPS_PROMETHEUS_URL"):
        make_twin_source(settings(twin_model=DEMO_MODEL))
    with pytest.raises(ConfigurationError, match="needs TWINOPS_TWIN_MODEL"):
        make_twin_source(settings(prometheus_url="http://127.0.0.1:9090"))
    source = make_twin_source(
        settings(
            prometheus_url="http://p:9090",
            twin_model=DEMO_MODEL,
            prometheus_timeout_seconds=2.5,
            prometheus_concurrency=4,
        )
    )
    assert isinstance(source, PrometheusSource)
    assert (source.url, source.timeout_seconds, source.concurrency, source.model.twin_id) == (
        "http://p:9090",
        2.5,
        4,
        "shop",
    )


# ---- the CLI: `twinops twin snapshot --json` from the configured source ------------------------

runner = CliRunner()


def cli_env(prom_url: str, model: Path) -> dict[str, str]:
    return {"TWINOPS_TWIN_SOURCE": "prometheus", "TWINOPS_PROMETHEUS_URL": prom_url, "TWINOPS_TWIN_MODEL": str(model)}


@requires_prometheus
def test_cli_snapshot_reads_prometheus(estate: tuple[SimulatorExporter, PrometheusServer], tmp_path: Path) -> None:
    exporter, prom = estate
    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    model = tmp_path / "model.yaml"
    model.write_text(DEMO_MODEL.read_text().replace("range: 1m", "range: 5s"))
    result = runner.invoke(app, ["twin", "snapshot", "--json"], env=cli_env(prom.url, model))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["twin_id"] == "shop" and [n["replicas"] for n in doc["nodes"]] == [4, 7, 4, 8, 3]


def test_cli_snapshot_with_prometheus_down_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["twin", "snapshot", "--json"], env=cli_env(f"http://127.0.0.1:{free_port()}", DEMO_MODEL)
    )
    assert result.exit_code == 2
    assert "twin source 'prometheus'" in result.output and "unreachable" in result.output


def test_cli_snapshot_with_a_bad_model_names_file_line_and_field(tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text(DEMO_MODEL.read_text().replace('deployment=~"{{nodes}}"', 'deployment=~"{{service}}"'))
    # The console script itself: its top level turns the ConfigurationError into one line, exit 2.
    script = Path(sys.executable).with_name("twinops")
    env = {"PATH": str(script.parent), "HOME": str(tmp_path), **cli_env("http://127.0.0.1:9", model)}
    result = subprocess.run(
        [str(script), "twin", "snapshot", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    where = f"{model}:14: queries.replicas.promql"
    assert f"{where}: unknown placeholder {{{{service}}}}" in result.stderr, result.stderr
