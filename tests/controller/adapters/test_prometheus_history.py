"""PrometheusDemandHistory against a real Prometheus scraping the simulator exporter (no mock of Prometheus).

The module's exporter and Prometheus (1 s scrapes, the demo twin model with `range: 5s`) are
test_prometheus_twin's `estate`; the store reads 1 s buckets so a few seconds of scraping make a
history. Tests that hide a series put it back before they end.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agents.forecast import DemandHistory
from controller.adapters.prometheus_history import CHUNK_POINTS, PrometheusDemandHistory
from controller.adapters.prometheus_twin import MAX_HISTORY_POINTS, PrometheusSource
from controller.adapters.sim_exporter import SimulatorExporter
from controller.app.worker import Services, activities_of
from controller.core.settings import Settings
from tests.controller.adapters import test_prometheus_twin
from tests.controller.adapters.test_prometheus_twin import (
    DEMO_MODEL,
    RATE_TOLERANCE,
    SCENARIO,
    demo_model,
    hidden,
    matches_truth,
    per_node_model,
    settled,
    source_of,
)
from tests.promstack import PrometheusServer, prometheus_server, requires_prometheus
from tests.workflows.test_deliberate_demand_history import agent, deliberate
from twin.graph import snapshot_flow
from twin.sources import TwinSourceError
from workflows.ports import DemandHistoryStore

estate = test_prometheus_twin.estate
"""The twin tests' exporter and Prometheus, one pair for this module too (pytest finds a fixture by its name)."""

NODES = ("gateway", "catalog", "checkout", "payments", "orders-db")
Estate = tuple[SimulatorExporter, PrometheusServer]


def store_of(
    prom: PrometheusServer, retention_seconds: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
) -> PrometheusDemandHistory:
    """The store over the demo model, reading the last `retention_seconds` in 1 s buckets."""
    return PrometheusDemandHistory(
        source_of(prom), bucket_seconds=1, retention_seconds=retention_seconds, transport=transport
    )


def read(store: PrometheusDemandHistory, nodes: tuple[str, ...] | None = None) -> tuple[float, DemandHistory]:
    now = datetime.now(UTC)
    return now.timestamp(), asyncio.run(store.read("shop", now, nodes))


def read_until(
    store: PrometheusDemandHistory, until: Callable[[float, DemandHistory], bool], within: float = 30.0
) -> tuple[float, DemandHistory]:
    """Poll `read` until `until(now, history)`; AssertionError with the last answer after `within` s."""
    deadline = time.monotonic() + within
    while True:
        now, history = read(store)
        if until(now, history):
            return now, history
        assert time.monotonic() < deadline, f"not settled within {within:.0f}s; last: {history}"
        time.sleep(0.5)


def whole_buckets(now: float, retention: float = 5.0) -> list[float]:
    """The bucket starts (1 s buckets) a read at `now` covers: from the retention cut-off to the last whole one."""
    return [float(t) for t in range(math.floor(now - retention), math.floor(now))]


def demand_of(exporter: SimulatorExporter) -> Mapping[str, float]:
    return snapshot_flow(exporter.snapshot()).demand


def near(value: float, truth: float) -> bool:
    return abs(value - truth) <= RATE_TOLERANCE * max(truth, 1.0)


# ---- with a real Prometheus ------------------------------------------------------------------


@requires_prometheus
def test_read_is_each_nodes_offered_demand_per_bucket(estate: Estate) -> None:
    exporter, prom = estate
    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    store = store_of(prom)
    assert isinstance(store, DemandHistoryStore)
    truth = demand_of(exporter)

    def complete(now: float, history: DemandHistory) -> bool:
        return all(
            [t for t, _ in history.of(n)] == whole_buckets(now) and all(near(v, truth[n]) for _, v in history.of(n))
            for n in NODES
        )

    _, history = read_until(store, complete)
    assert history.bucket_seconds == 1.0 and set(history.series) == set(NODES)
    # Offered demand through the graph, not what arrives: checkout sits behind the saturated gateway.
    arriving = exporter.snapshot().node("checkout").metrics.arrival_rate
    assert arriving is not None and truth["checkout"] > arriving * (1 + RATE_TOLERANCE)
    # The entry nodes alone, as the deliberate activity asks.
    _, entries = read(store, ("gateway",))
    assert set(entries.series) == {"gateway"}
    # Recording is Prometheus' job: nothing kept, nothing changed.
    assert asyncio.run(store.record("shop", datetime.now(UTC), {"gateway": 1.0})) == 0
    # Another twin has no history here.
    assert asyncio.run(store.read("another", datetime.now(UTC))) == DemandHistory(bucket_seconds=1.0)


@requires_prometheus
def test_a_hidden_series_is_a_gap_never_zero(estate: Estate) -> None:
    exporter, prom = estate
    source = source_of(prom)
    settled(source, lambda s: matches_truth(s, exporter.snapshot()))
    store = store_of(prom, retention_seconds=12.0)
    # checkout's calls to payments and orders-db: both ratios out of the scrape.
    with hidden(exporter, "checkout", "http_client_requests_total"):
        settled(source, lambda s: {(q.node, q.metric) for q in s.quality} >= {("payments", "ratio")})

        def gap_shows(now: float, history: DemandHistory) -> bool:
            recent = whole_buckets(now, 3.0)
            return not {t for t, _ in history.of("payments")} & set(recent)

        now, history = read_until(store, gap_shows)
    recent = whole_buckets(now, 3.0)
    for n in ("gateway", "catalog", "checkout"):  # their demand does not flow through the hidden ratios
        assert set(recent) <= {t for t, _ in history.of(n)}, n
    for n in ("payments", "orders-db"):
        assert not {t for t, _ in history.of(n)} & set(recent), n
        assert all(v > 0 for _, v in history.of(n)), f"{n}: a gap read as zero"


@requires_prometheus
def test_only_the_inputs_asked_for_are_queried_in_chunks_prometheus_accepts(estate: Estate) -> None:
    exporter, prom = estate
    settled(source_of(prom), lambda s: matches_truth(s, exporter.snapshot()))
    queries: list[httpx.QueryParams] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            assert request.method == "POST"  # a form body: a batched regex of many nodes is long
            queries.append(httpx.QueryParams(request.read().decode()))
            return await super().handle_async_request(request)

    store = store_of(prom, transport=Recording())
    read(store, ("gateway",))
    assert [q["query"] for q in queries] == [
        'avg_over_time((sum by (service) (rate(ingress_requests_total{service=~"gateway"}[5s])))[1s:1s])'
    ]
    queries.clear()
    read(store)
    # The demo model is batched: every node's external load in one query, every edge's ratio in another;
    # no replicas, no metrics.
    assert len(queries) == 2
    assert 'service=~"gateway|catalog|checkout|payments|orders-db"' in queries[0]["query"]
    queries.clear()
    per_node = PrometheusDemandHistory(
        source_of(prom, per_node_model()), bucket_seconds=1, retention_seconds=5.0, transport=Recording()
    )
    _, history = read(per_node)
    assert len(queries) == 5 + 4  # per node: every node's external load, every edge's ratio
    assert set(history.series) == set(NODES)
    # 25,000 one-second buckets: three range queries per series, each within Prometheus' limit.
    queries.clear()
    long = store_of(prom, retention_seconds=25_000.0, transport=Recording())
    _, history = read(long, ("gateway",))
    steps = sorted((float(q["end"]) - float(q["start"])) / float(q["step"]) + 1 for q in queries)
    assert len(steps) == 3 and max(steps) == CHUNK_POINTS < MAX_HISTORY_POINTS and sum(steps) == 25_000
    assert history.of("gateway")  # the chunks' answers are joined


@requires_prometheus
async def test_prometheus_stopped_costs_the_tick_its_forecast_not_the_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SimulatorExporter.from_file(SCENARIO) as exporter:
        target = exporter.url.removeprefix("http://")
        with prometheus_server(tmp_path / "prom", targets=[target], scrape_interval="1s") as prom:
            await asyncio.to_thread(settled, source_of(prom), lambda s: s.node("gateway").replicas == 4)
            store = store_of(prom)
            prom.stop()
            with pytest.raises(TwinSourceError, match=r"Prometheus at http://127\.0\.0\.1:\d+ unreachable"):
                await store.read("shop", datetime.now(UTC))
            snapshot = exporter.snapshot()
            without = await deliberate(agent(None), snapshot)
            with caplog.at_level(logging.WARNING):
                got = await deliberate(agent(store), snapshot)
    assert got == without  # the tick decided, as it would with no history at all
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("demand history of twin 'shop' unreadable, deciding without forecasts" in w for w in warnings)
    assert not any("not recorded" in w for w in warnings)  # recording asks nothing of Prometheus


# ---- without Prometheus ----------------------------------------------------------------------


def test_the_worker_reads_demand_history_from_prometheus_when_it_is_the_source(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        twin_source="prometheus",
        prometheus_url="http://127.0.0.1:9",
        twin_model=DEMO_MODEL,
        actuator="webhook",
        actuator_url="http://127.0.0.1:9/actions",
        actuator_secret="test-secret",
        demand_bucket_seconds=600,
        demand_retention_days=2,
    )
    services = Services.from_settings(settings)
    store = services.demand_history
    assert isinstance(store, PrometheusDemandHistory) and store.source is services.twin
    assert (store.bucket_seconds, store.retention_seconds) == (600, 2 * 86400.0)
    (run,) = [a for a in activities_of(services) if getattr(a, "__name__", "") == "deliberate"]
    assert run.__self__.demand_history is store


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bucket_seconds": 0}, "bucket_seconds must be a positive whole number"),
        ({"bucket_seconds": 2.5}, "bucket_seconds must be a positive whole number"),
        ({"sample_seconds": 0}, "sample_seconds must be a positive whole number"),
        ({"retention_seconds": math.inf}, "retention_seconds must be positive"),
    ],
)
def test_bad_widths_are_refused(options: dict[str, float], message: str) -> None:
    source = PrometheusSource("http://127.0.0.1:9", demo_model())
    with pytest.raises(ValueError, match=message):
        PrometheusDemandHistory(source, **options)  # type: ignore[arg-type]
