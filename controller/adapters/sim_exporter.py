"""The simulator as an estate a real Prometheus scrapes: `SimulatorExporter` serves a scenario run in wall-clock time.

Endpoints (one HTTP server, uvicorn in a background thread):

- `GET /metrics`: the estate in Prometheus text exposition (0.0.4), metric names in `FAMILIES`;
- `GET /snapshot`: the simulator's own twin.v1 snapshot (the truth, to compare a scraped twin with);
- `POST /actions`: the webhook actuator protocol (`controller.adapters.actuators.webhook`), served by
  `SignedActionReceiver`, which `tests/workflows/estate_server.py` uses too;
- `GET /healthz`.

Counters integrate each step's rates over its simulated seconds (a step per second at most), and
the simulator is kept at the wall clock by every request and by a background tick once a second,
so `rate(x[15s])` over the scrapes gives back the simulator's rates. A metric the simulator does
not know (None) has no series rather than a zero; a counter keeps its total while unknown.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import TypeAdapter, ValidationError

from controller.adapters.actuators import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from controller.adapters.live_twin import MAX_CATCH_UP_SECONDS, live_scenario
from twin.actions import Action
from twin.contract import Snapshot
from twin.scenario import load_scenario
from twin.simulator import Simulator

__all__ = ["FAMILIES", "SignedActionReceiver", "SimulatorExporter"]

FAMILIES: Final = (
    "http_requests_received_total",
    "http_requests_total",
    "ingress_requests_total",
    "http_client_requests_total",
    "service_utilization_ratio",
    "queue_depth",
    "http_request_duration_seconds",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
)
"""The metric families `/metrics` exposes (what `hide` accepts)."""

_HELP: Final = {
    "http_requests_received_total": ("Requests arrived at the service (after upstream throttling).", ["service"]),
    "http_requests_total": ("Requests the service completed, by status code.", ["service", "code"]),
    "ingress_requests_total": ("Requests offered to the service from outside the graph.", ["service"]),
    "http_client_requests_total": ("Requests the service sent to a downstream target.", ["service", "target"]),
    "service_utilization_ratio": ("Throughput over capacity.", ["service"]),
    "queue_depth": ("Requests waiting at the service.", ["service"]),
    "http_request_duration_seconds": ("Response time quantiles.", ["service", "quantile"]),
    "kube_deployment_spec_replicas": ("Replicas asked for.", ["deployment"]),
    "kube_deployment_status_replicas_available": ("Replicas ready and serving.", ["deployment"]),
}
_MAX_STEP_SECONDS: Final = 1.0
_TICK_SECONDS: Final = 1.0
_START_TIMEOUT_SECONDS: Final = 10.0
_ACTION = TypeAdapter[Action](Action)

Labels = tuple[str, ...]


class SignedActionReceiver:
    """The receiving end of the webhook actuator protocol over a simulator: each idempotency key applied once.

    `receive` answers as the protocol says (200 applied with the undo, 409 with the original undo
    for a repeated key, 401 for a missing or bad signature); `applied`, `undo` and `requests`
    count per key what happened, which is what the crash tests assert on.
    """

    def __init__(
        self,
        simulator: Simulator,
        secret: str | None,
        *,
        lock: threading.Lock,
        before_apply: Callable[[], None] = lambda: None,
    ) -> None:
        self.simulator = simulator
        self.secret = secret
        self.lock = lock
        """Held while an action is applied; the owner holds it while it steps the simulator."""
        self.before_apply = before_apply
        """Called under the lock before an action lands (brings the simulator to the current time)."""
        self.applied: Counter[str] = Counter()
        self.undo: dict[str, Any] = {}
        self.requests: Counter[str] = Counter()

    def receive(self, body: bytes, *, timestamp: str, signature: str, key: str) -> tuple[int, dict[str, Any]]:
        """Check, apply and record one request; the status and JSON body to answer with."""
        if not self.secret:
            # Fails closed: without a secret nothing could be verified, so nothing is applied.
            return 403, {"applied": False, "detail": "actions are disabled: no actuator secret was configured"}
        if not signature or not timestamp:
            return 401, {
                "applied": False,
                "detail": f"unsigned request: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} required",
            }
        if not verify_signature(self.secret, timestamp, body, signature):
            return 401, {"applied": False, "detail": "bad signature, or a timestamp outside the replay window"}
        if not key:
            return 400, {"applied": False, "detail": f"missing {IDEMPOTENCY_HEADER} header"}
        self.requests[key] += 1
        with self.lock:
            if key in self.undo:
                return 409, {"applied": False, "undo": self.undo[key], "detail": "already applied"}
            try:
                action = _ACTION.validate_python(json.loads(body)["action"])
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                return 422, {"applied": False, "detail": f"body: expected {{'action': ...}}: {exc}"}
            self.before_apply()
            try:
                undo = self.simulator.apply(action)
            except ValueError as exc:
                return 422, {"applied": False, "detail": str(exc)}
            self.applied[key] += 1
            self.undo[key] = undo.model_dump(mode="json")
            return 200, {"applied": True, "undo": self.undo[key], "detail": "applied"}


class SimulatorExporter(Collector):
    """A simulator run in wall-clock time behind `/metrics`, `/snapshot`, `/actions` and `/healthz`.

    Use as a context manager (or `start()` / `stop()`); `url` is where it listens (port 0: a free
    one). `hide(node, metric)` takes a node's series of one family out of the scrape until `show`.
    """

    def __init__(
        self,
        simulator: Simulator,
        *,
        secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.simulator = simulator
        self._clock = clock
        self._lock = threading.Lock()
        self.actions = SignedActionReceiver(simulator, secret, lock=self._lock, before_apply=self._advance_locked)
        self._totals: dict[tuple[str, Labels], float] = {}
        self._known: set[tuple[str, Labels]] = set()
        self._hidden: set[tuple[str, str]] = set()
        self._observe(simulator.snapshot(), 0.0)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)
        self.app = self._make_app()
        self._host, self._port = host, port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @classmethod
    def from_file(
        cls, path: Path, *, seed: int | None = None, secret: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> SimulatorExporter:
        """Load a scenario and start it now (its `start` moved to the current time)."""
        simulator = Simulator(live_scenario(load_scenario(path), datetime.now(UTC)), seed=seed)
        return cls(simulator, secret=secret, host=host, port=port)

    # ---- simulated time --------------------------------------------------------------------

    def advance(self) -> None:
        """Step the simulator up to the wall clock, integrating every counter over each step."""
        with self._lock:
            self._advance_locked()

    def _advance_locked(self) -> None:
        behind = min((self._clock() - self.simulator.now).total_seconds(), MAX_CATCH_UP_SECONDS)
        # Below a millisecond a step is not worth a snapshot; the next call takes it along.
        while behind >= 1e-3:
            dt = min(_MAX_STEP_SECONDS, behind)
            self.simulator.step(dt)
            self._observe(self.simulator.snapshot(), dt)
            behind -= dt

    def _observe(self, snap: Snapshot, dt: float) -> None:
        """Add the rates of the step just taken (they hold over its `dt` seconds) to the totals."""
        for key, rate in _counter_rates(snap):
            if rate is None:
                self._known.discard(key)
                continue
            self._totals[key] = self._totals.get(key, 0.0) + rate * dt
            self._known.add(key)

    # ---- exposition ------------------------------------------------------------------------

    def hide(self, node: str, metric: str) -> None:
        """Take `node`'s series of family `metric` out of the scrape (a fault for tests and drills).

        `node` is the series' `service` label (`deployment` for the kube families; for
        `http_client_requests_total`, the sender: every edge out of it goes). Counters keep counting.
        """
        if metric not in FAMILIES:
            raise ValueError(f"metric {metric!r}: not one of {', '.join(FAMILIES)}")
        if node not in {n.id for n in self.simulator.scenario.nodes}:
            raise ValueError(f"node {node!r}: not in twin {self.simulator.scenario.twin_id!r}")
        self._hidden.add((metric, node))

    def show(self, node: str, metric: str) -> None:
        """Put a series `hide` took out back into the scrape."""
        self._hidden.discard((metric, node))

    def collect(self) -> Iterator[Metric]:
        """The families at the current time (prometheus_client's collector protocol)."""
        with self._lock:
            self._advance_locked()
            snap = self.simulator.snapshot()
            provisioned = self.simulator.provisioned()
            totals = {key: self._totals[key] for key in self._known}
        samples: dict[str, list[tuple[Labels, float]]] = {name: [] for name in FAMILIES}
        for (name, labels), total in sorted(totals.items()):
            samples[name].append((labels, total))
        for name, labels, value in _gauges(snap, provisioned):
            if value is not None:
                samples[name].append((labels, value))
        for name in FAMILIES:
            help_text, label_names = _HELP[name]
            family: CounterMetricFamily | GaugeMetricFamily
            if name.endswith("_total"):
                family = CounterMetricFamily(name, help_text, labels=label_names)
            else:
                family = GaugeMetricFamily(name, help_text, labels=label_names)
            for labels, value in samples[name]:
                if (name, labels[0]) not in self._hidden:
                    family.add_metric(list(labels), value)
            yield family

    def exposition(self) -> bytes:
        """The `/metrics` body."""
        return generate_latest(self._registry)

    def snapshot(self) -> Snapshot:
        """The simulator's snapshot now (the truth a scraped twin is compared with)."""
        with self._lock:
            self._advance_locked()
            return self.simulator.snapshot()

    # ---- HTTP ------------------------------------------------------------------------------

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="twinops simulator exporter", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/metrics")
        def metrics() -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

        @app.get("/snapshot")
        def snapshot() -> Response:
            return Response(self.snapshot().to_json(), media_type="application/json")

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok", "twin_id": self.simulator.scenario.twin_id}

        @app.post("/actions")
        async def actions(request: Request) -> JSONResponse:
            body = await request.body()
            status, answer = await run_in_threadpool(
                self.actions.receive,
                body,
                timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                signature=request.headers.get(SIGNATURE_HEADER, ""),
                key=request.headers.get(IDEMPOTENCY_HEADER, ""),
            )
            return JSONResponse(answer, status_code=status)

        return app

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self._sock is None:
            raise RuntimeError("the exporter is not started")
        host, port = self._sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> SimulatorExporter:
        """Listen, serve in a background thread and tick the simulator once a second."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._sock = socket.create_server((self._host, self._port), family=family)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", server_header=False)
        self._server = uvicorn.Server(config)
        self._stopping.clear()
        server, sock = self._server, self._sock
        self._threads = [
            threading.Thread(target=lambda: server.run(sockets=[sock]), name="sim-exporter-http", daemon=True),
            threading.Thread(target=self._tick, name="sim-exporter-tick", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started and self._threads[0].is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            self.stop()
            raise RuntimeError(f"the exporter on {self._host}:{self._port} did not start")
        return self

    def _tick(self) -> None:
        while not self._stopping.wait(_TICK_SECONDS):
            self.advance()

    def stop(self) -> None:
        """Stop serving and ticking (waits for requests in flight)."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._threads = []
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    def __enter__(self) -> SimulatorExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _counter_rates(snap: Snapshot) -> Iterable[tuple[tuple[str, Labels], float | None]]:
    """Each counter series and its rate (per second) in `snap`; None where the simulator does not know it."""
    for node in snap.nodes:
        m = node.metrics
        yield ("http_requests_received_total", (node.id,)), m.arrival_rate
        ok = failed = None
        if m.throughput is not None and m.error_rate is not None:
            ok, failed = m.throughput * (1.0 - m.error_rate), m.throughput * m.error_rate
        yield ("http_requests_total", (node.id, "200")), ok
        yield ("http_requests_total", (node.id, "500")), failed
        yield ("ingress_requests_total", (node.id,)), node.external_arrival_rate
    throughput = {node.id: node.metrics.throughput for node in snap.nodes}
    for edge in snap.edges:
        sent = throughput[edge.source]
        yield ("http_client_requests_total", (edge.source, edge.target)), None if sent is None else edge.ratio * sent


def _gauges(snap: Snapshot, provisioned: dict[str, int]) -> Iterable[tuple[str, Labels, float | None]]:
    """Each gauge series and its value now; None where the simulator does not know it."""
    for node in snap.nodes:
        m = node.metrics
        yield "service_utilization_ratio", (node.id,), m.utilization
        yield "queue_depth", (node.id,), m.queue_depth
        latency = None if m.latency_p95_ms is None else m.latency_p95_ms / 1000.0
        yield "http_request_duration_seconds", (node.id, "0.95"), latency
        yield "kube_deployment_spec_replicas", (node.id,), float(provisioned[node.id])
        yield "kube_deployment_status_replicas_available", (node.id,), float(node.replicas)
