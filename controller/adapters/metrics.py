"""Prometheus metrics of twinops itself: the instruments, the collectors that read the database, serving them.

`TwinopsMetrics(registry)` creates every instrument on one `CollectorRegistry` (a fresh one
per process, or per test) and is the observer the adapters report to: the audit ledger
(`appended`), the policy gate (`decided`) and the worker's activity interceptor (`tick_phase`,
`snapshot_taken`). Those counters and histograms are per process, as Prometheus expects:
sum them over instances. What is the same for every process (the approval queue, the audit
heads) is read from the database at scrape time by `DatabaseCollector`, so every process
that serves /metrics reports the truth rather than its own count: take `max` over instances.

Metric names (all `twinops_`), their types, labels and where each is measured: deploy/README.md,
"Metrics of twinops itself, alerting rules, dashboard".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import get_args
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from controller.adapters.audit.canonical import parse_time
from controller.adapters.audit.reader import EVENTS, HEADS
from controller.adapters.inbox import approval_inbox
from workflows.audit import AuditEventInput, CompletedPayload, EventKind
from workflows.ports import InboxStatus

__all__ = [
    "POLICY_FAILURE_CODES",
    "WAITING_STATUSES",
    "DatabaseCollector",
    "MetricsServer",
    "TwinopsMetrics",
    "serve_metrics",
]

log = structlog.get_logger("twinops.metrics")

WAITING_STATUSES = (InboxStatus.PENDING, InboxStatus.ESCALATED)
"""Statuses that count as waiting in the approval queue (a human must act)."""
RISKS = ("low", "medium", "high")
"""Risk levels always reported (0 when none waits), so an empty queue is a value, not an absence."""
POLICY_FAILURE_CODES = (
    "policy_timeout",
    "policy_error",
    "policy_unreachable",
    "policy_undefined",
    "policy_malformed_decision",
    "config_invalid",
)
"""Reason codes of a decision the gate made because the engine gave none (pre-set to 0 per package)."""
POLICY_PACKAGES = ("safety", "approval")
ALERT_OUTCOMES = ("accepted", "repeated", "resolved", "ignored")
PUSH_RESULTS = ("woke", "stored", "repeated", "invalid")
WAKE_REASONS = ("alert", "snapshot", "changed")
OUTCOMES: tuple[str, ...] = get_args(CompletedPayload.model_fields["outcome"].annotation)

_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class TwinopsMetrics:
    """Every instrument of one process, on `registry`; also the observer of the ledger, the gate and the worker."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        info = Gauge("twinops_build_info", "Always 1; the twinops version.", ["version"], registry=r)
        info.labels(version=version("twinops")).set(1)

        self.audit_events = Counter(
            "twinops_audit_events",
            "Audit events this process appended (repeats of an event id not counted), by kind.",
            ["kind"],
            registry=r,
        )
        self.proposal_outcomes = Counter(
            "twinops_proposal_outcomes",
            "Remediations this process completed, by outcome (the `completed` audit event).",
            ["outcome"],
            registry=r,
        )
        self.audit_append_seconds = Histogram(
            "twinops_audit_append_seconds",
            "Time to append one audit event (lock, insert, head if due, commit).",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.policy_decision_seconds = Histogram(
            "twinops_policy_decision_seconds",
            "Time the policy gate took for one decision, failures included.",
            ["package", "engine"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.policy_denials = Counter(
            "twinops_policy_denials",
            "Reasons the policy gave against a proposal (safety) or an approval (approval), by reason code.",
            ["package", "code"],
            registry=r,
        )
        self.policy_failures = Counter(
            "twinops_policy_failures",
            "Decisions the gate denied because the engine gave no usable answer (fail closed), by code.",
            ["package", "code"],
            registry=r,
        )
        self.tick_seconds = Histogram(
            "twinops_tick_duration_seconds",
            "Duration of the agent loop's tick activities: take_snapshot and deliberate.",
            ["activity"],
            buckets=_TICK_BUCKETS,
            registry=r,
        )
        self.alerts_received = Counter(
            "twinops_alerts_received",
            "Alerts Alertmanager posted to this API, by what became of them (accepted wakes the loop).",
            ["outcome"],
            registry=r,
        )
        self.snapshots_pushed = Counter(
            "twinops_snapshots_pushed",
            "Snapshots pushed to this API, by result: stored (and woke the loop or not), repeated, invalid.",
            ["result"],
            registry=r,
        )
        self.loop_wakeups = Counter(
            "twinops_loop_wakeups",
            "`wake` signals this process sent an agent loop, by reason (an alert's repeat or resolution is sent too, "
            "but starts no tick); failed ones not counted.",
            ["reason"],
            registry=r,
        )
        for outcome in ALERT_OUTCOMES:
            self.alerts_received.labels(outcome=outcome)
        for result in PUSH_RESULTS:
            self.snapshots_pushed.labels(result=result)
        for reason in WAKE_REASONS:
            self.loop_wakeups.labels(reason=reason)
        self.snapshots = _SnapshotAges()
        r.register(self.snapshots)
        for kind in EventKind:
            self.audit_events.labels(kind=kind.value)
        for outcome in OUTCOMES:
            self.proposal_outcomes.labels(outcome=outcome)
        for package in POLICY_PACKAGES:
            for code in POLICY_FAILURE_CODES:
                self.policy_failures.labels(package=package, code=code)
        self._database: DatabaseCollector | None = None

    def watch_database(self, engine: Engine | Callable[[], Engine]) -> DatabaseCollector:
        """Report the approval queue and the audit heads as the database has them at each scrape (once)."""
        if self._database is None:
            self._database = DatabaseCollector(engine)
            self.registry.register(self._database)
        return self._database

    # -- observers --------------------------------------------------------------------------------

    def appended(self, event: AuditEventInput, seconds: float, *, new: bool) -> None:
        """The audit ledger appended `event` in `seconds` (`new`: not a repeat of a stored event id)."""
        self.audit_append_seconds.observe(seconds)
        if not new:
            return
        self.audit_events.labels(kind=event.kind.value).inc()
        if event.kind is EventKind.COMPLETED:
            self.proposal_outcomes.labels(outcome=str(event.payload.get("outcome", "unknown"))).inc()

    def decided(self, package: str, engine: str, seconds: float, codes: Sequence[str], *, failure: str | None) -> None:
        """The policy gate decided in `seconds`; `codes` are the reasons against, `failure` the engine's failure."""
        self.policy_decision_seconds.labels(package=package, engine=engine).observe(seconds)
        for code in codes:
            self.policy_denials.labels(package=package, code=code).inc()
        if failure is not None:
            self.policy_failures.labels(package=package, code=failure).inc()

    def tick_phase(self, activity: str, seconds: float) -> None:
        """One tick activity (`take_snapshot` or `deliberate`) took `seconds`, failed or not."""
        self.tick_seconds.labels(activity=activity).observe(seconds)

    def snapshot_taken(self, twin_id: str, observed_at: datetime) -> None:
        """The agent loop read a snapshot of `twin_id` observed at `observed_at`."""
        self.snapshots.taken(twin_id, observed_at)


class _SnapshotAges(Collector):
    """`twinops_snapshot_age_seconds{twin_id}`: now minus the newest snapshot's observed_at, computed per scrape.

    Computed when scraped, not when taken: a loop that stops ticking shows a growing age.
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._observed: dict[str, datetime] = {}

    def taken(self, twin_id: str, observed_at: datetime) -> None:
        with self._lock:
            seen = self._observed.get(twin_id)
            if seen is None or observed_at > seen:
                self._observed[twin_id] = observed_at

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "twinops_snapshot_age_seconds",
            "Seconds since the newest twin snapshot this process read was observed, by twin.",
            labels=["twin_id"],
        )
        now = self._clock()
        with self._lock:
            for twin_id, observed_at in sorted(self._observed.items()):
                family.add_metric([twin_id], max((now - observed_at).total_seconds(), 0.0))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("twinops_snapshot_age_seconds", "", labels=["twin_id"])


class DatabaseCollector(Collector):
    """The approval queue by risk and the audit heads' lag, read from the database at every scrape.

    A database that does not answer gives `twinops_database_up 0` and none of the other values
    (an unknown queue is not an empty one).
    """

    def __init__(
        self, engine: Engine | Callable[[], Engine], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._engine = engine
        self._clock = clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Described without a query, so registering the collector touches no database.
        for name, labels in _DATABASE_FAMILIES:
            yield GaugeMetricFamily(name, "", labels=labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("twinops_database_up", "1 when the database answered this scrape's queries.")
        started = time.monotonic()
        try:
            families = self._read()
        except Exception as exc:  # a scrape must answer even while the database does not
            log.warning("metrics.database_unreadable", error=" ".join(str(exc).split())[:300])
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
        took = GaugeMetricFamily("twinops_database_scrape_seconds", "Time the database queries of this scrape took.")
        took.add_metric([], time.monotonic() - started)
        yield took

    def _read(self) -> list[GaugeMetricFamily]:
        engine = self._engine if isinstance(self._engine, Engine) else self._engine()
        now = self._clock()
        t, e, h = approval_inbox.c, EVENTS.c, HEADS.c
        waiting = sorted(s.value for s in WAITING_STATUSES)
        with engine.connect() as conn:
            queue = conn.execute(
                select(t.risk, func.count(), func.min(t.created_at)).where(t.status.in_(waiting)).group_by(t.risk)
            ).all()
            head = conn.execute(select(h.tree_size, h.time).order_by(h.tree_size.desc()).limit(1)).first()
            size = conn.execute(select(func.max(e.seq))).scalar()
            covered = head.tree_size if head is not None else 0
            first_unsigned = conn.execute(select(e.time).where(e.seq == covered)).scalar()

        depth = GaugeMetricFamily(
            "twinops_queue_depth", "Proposals waiting for a human (pending or escalated), by risk.", labels=["risk"]
        )
        oldest = GaugeMetricFamily(
            "twinops_queue_oldest_pending_age_seconds",
            "Age of the oldest proposal waiting for a human, by risk (0 when none waits).",
            labels=["risk"],
        )
        by_risk = {risk: (0, None) for risk in RISKS} | {row[0]: (row[1], row[2]) for row in queue}
        for risk, (count, created_at) in sorted(by_risk.items()):
            depth.add_metric([risk], float(count))
            age = (now - _aware(created_at)).total_seconds() if created_at is not None else 0.0
            oldest.add_metric([risk], max(age, 0.0))

        events = 0 if size is None else int(size) + 1
        unsigned = GaugeMetricFamily("twinops_audit_unsigned_events", "Audit events no signed tree head covers yet.")
        unsigned.add_metric([], float(max(events - covered, 0)))
        unsigned_age = GaugeMetricFamily(
            "twinops_audit_unsigned_age_seconds",
            "Age of the oldest audit event no signed head covers (0 when every event is covered).",
        )
        lag = (now - parse_time(first_unsigned)).total_seconds() if first_unsigned is not None else 0.0
        unsigned_age.add_metric([], max(lag, 0.0))
        families = [depth, oldest, unsigned, unsigned_age]
        if head is not None:
            head_age = GaugeMetricFamily(
                "twinops_audit_head_age_seconds", "Seconds since the newest signed tree head (absent before the first)."
            )
            head_age.add_metric([], max((now - parse_time(head.time)).total_seconds(), 0.0))
            families.append(head_age)
        return families


_DATABASE_FAMILIES: tuple[tuple[str, list[str]], ...] = (
    ("twinops_database_up", []),
    ("twinops_database_scrape_seconds", []),
    ("twinops_queue_depth", ["risk"]),
    ("twinops_queue_oldest_pending_age_seconds", ["risk"]),
    ("twinops_audit_unsigned_events", []),
    ("twinops_audit_unsigned_age_seconds", []),
    ("twinops_audit_head_age_seconds", []),
)


def _aware(value: datetime) -> datetime:
    # UtcDateTime returns aware values; a naive one (an old SQLite row) is UTC by the schema's contract.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class MetricsServer:
    """A /metrics HTTP server on its own thread (a worker's): where it listens, and how to stop it."""

    host: str
    port: int
    server: WSGIServer

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve `registry` on http://host:port/metrics (port 0: any free one) from a daemon thread."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    log.info("metrics.serving", host=host, port=bound)
    return MetricsServer(host, bound, server)
