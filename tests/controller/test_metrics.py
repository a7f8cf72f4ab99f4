"""twinops' own metrics: what the ledger, the gate and the tick report, what the database collector reads, serving.

Every test builds a fresh `TwinopsMetrics` (its own registry) and reads the exposition text back
with prometheus_client's parser, as Prometheus would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from sqlalchemy import Engine, create_engine
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from controller.adapters.audit import NoteSigner, SqlAuditLedger
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.metrics import DatabaseCollector, TwinopsMetrics, serve_metrics
from controller.adapters.policy import FailClosedGate
from controller.adapters.temporal_server import TemporalRuntime, connect, sdk_metrics_runtime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.app.worker import Services, TickMetricsInterceptor, running_worker
from controller.cli.worker import close_services, serving_worker_metrics
from controller.core.db import create_engine as twinops_engine
from controller.core.db import migrate, scratch_postgres_schema
from controller.core.errors import PolicyEvaluationError
from controller.core.settings import Settings
from controller.testing import RecordingNotifier
from tests.controller.adapters.audit.conftest import PG_URL, require_postgres
from tests.controller.adapters.audit.factory import remediation_trail, step_event
from tests.controller.adapters.policy.test_fail_closed import SAFETY_IN
from tests.workflows.conftest import eventually, make_simulator, policies_without_freezes, signed_update
from twin.contract import Snapshot
from workflows import AgentLoopInput, AgentLoopWorkflow, RemediationWorkflow, Stage, Timeouts
from workflows.contracts import Principal
from workflows.ports import InboxEntry, InboxStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def samples(metrics: TwinopsMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: TwinopsMetrics, name: str, **labels: str) -> float | None:
    """One sample's value from the exposition text (None when absent)."""
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database: a SQLite file, or a scratch PostgreSQL schema (skipped, saying why, without one)."""
    if request.param == "postgres":
        require_postgres()
        with scratch_postgres_schema(PG_URL, "twinops_metrics_test") as make:
            yield make()
        return
    made = twinops_engine(f"sqlite:///{tmp_path / 'twinops.db'}")
    migrate(made)
    yield made
    made.dispose()


@pytest.fixture
def ledger(engine: Engine) -> SqlAuditLedger:
    return SqlAuditLedger(engine, NoteSigner("twinops.test/audit", Ed25519PrivateKey.generate()), head_every_events=5,
                          head_every_seconds=3600)  # fmt: skip


# -- the ledger's appends -----------------------------------------------------------------------------


def test_audit_events_are_counted_by_kind_and_a_rollback_by_outcome_once(ledger: SqlAuditLedger) -> None:
    metrics = TwinopsMetrics()
    trail = remediation_trail()
    with ledger.observed_by(metrics):
        for event in trail:
            ledger.append_sync(event)
        for event in trail:  # an activity retry: the same event ids again, stored once and counted once
            ledger.append_sync(event)
    ledger.append_sync(step_event(99))  # after the block: not observed

    assert value(metrics, "twinops_audit_events_total", kind="approved") == 1
    assert value(metrics, "twinops_audit_events_total", kind="compensated") == 1
    assert value(metrics, "twinops_audit_events_total", kind="step_started") == 1
    assert value(metrics, "twinops_audit_events_total", kind="rejected") == 0  # every kind is there from the start
    assert value(metrics, "twinops_audit_events_total", kind="compensation_failed") == 0
    assert value(metrics, "twinops_proposal_outcomes_total", outcome="rolled_back") == 1
    assert value(metrics, "twinops_proposal_outcomes_total", outcome="succeeded") == 0
    total = sum(v for (name, _), v in samples(metrics).items() if name == "twinops_audit_events_total")
    assert total == len(trail)
    assert value(metrics, "twinops_audit_append_seconds_count") == 2 * len(trail)  # repeats take time too
    assert value(metrics, "twinops_audit_append_seconds_bucket", le="+Inf") == 2 * len(trail)
    assert (value(metrics, "twinops_audit_append_seconds_sum") or 0) > 0


def test_an_observer_that_fails_does_not_fail_the_append(ledger: SqlAuditLedger) -> None:
    class Broken:
        def appended(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("observer down")

    with ledger.observed_by(Broken()):
        record = ledger.append_sync(step_event(1))
    assert record.seq == 0


# -- the policy gate ----------------------------------------------------------------------------------


class _Gate(FailClosedGate):
    engine_name = "fake"

    def __init__(self, answer: Callable[[], Any]) -> None:
        super().__init__(bundle_revision="test-1", bundle_sha256="ab" * 32, timeout_seconds=2.0)
        self.answer = answer

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        return self.answer()


_DENY = {
    "allow": False,
    "deny": [{"code": "freeze_window", "msg": "frozen"}, {"code": "max_step", "msg": "too big"}],
    "risk": "high",
    "required_approvals": 0,
    "approver_groups": [],
    "auto_approve": False,
}


def _unreachable() -> Any:
    raise PolicyEvaluationError("policy_unreachable", "OPA at http://opa:8181 unreachable")


async def test_policy_latency_denials_by_code_and_engine_failures() -> None:
    metrics = TwinopsMetrics()
    deny, down = _Gate(lambda: _DENY), _Gate(_unreachable)
    with deny.observed_by(metrics), down.observed_by(metrics):
        assert not (await deny.evaluate_safety(SAFETY_IN)).allow
        assert not (await down.evaluate_safety(SAFETY_IN)).allow
        assert not (await deny.evaluate_document("safety", {"not": "an input"})).allow  # type: ignore[union-attr]
    assert not (await deny.evaluate_safety(SAFETY_IN)).allow  # unobserved

    assert value(metrics, "twinops_policy_decision_seconds_count", package="safety", engine="fake") == 3
    assert value(metrics, "twinops_policy_decision_seconds_bucket", package="safety", engine="fake", le="+Inf") == 3
    assert value(metrics, "twinops_policy_denials_total", package="safety", code="freeze_window") == 1
    assert value(metrics, "twinops_policy_denials_total", package="safety", code="max_step") == 1
    assert value(metrics, "twinops_policy_denials_total", package="safety", code="policy_unreachable") == 1
    assert value(metrics, "twinops_policy_denials_total", package="safety", code="invalid_input") == 1
    # The engine failed once; an invalid input is the caller's fault, not the engine's.
    assert value(metrics, "twinops_policy_failures_total", package="safety", code="policy_unreachable") == 1
    assert value(metrics, "twinops_policy_failures_total", package="safety", code="invalid_input") is None
    assert value(metrics, "twinops_policy_failures_total", package="approval", code="policy_timeout") == 0


# -- the tick -----------------------------------------------------------------------------------------


class _Returns(ActivityInboundInterceptor):
    def __init__(self, result: Any) -> None:  # the end of the chain: no next to call
        self.result = result

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return self.result


def _snapshot(observed_at: datetime) -> Snapshot:
    return Snapshot.model_validate(
        {
            "schema": "twin.v1",
            "twin_id": "shop",
            "observed_at": observed_at.isoformat(),
            "nodes": [{"id": "gateway", "kind": "service", "replicas": 1, "capacity_per_replica": 10.0}],
            "edges": [],
        }
    )


async def test_the_tick_activities_are_timed_and_the_snapshot_age_grows_until_the_next() -> None:
    metrics = TwinopsMetrics()
    observed_at = datetime.now(UTC) - timedelta(seconds=90)
    interceptor = TickMetricsInterceptor(metrics)

    async def run(activity_type: str, result: Any) -> Any:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, activity_type=activity_type)
        chain = interceptor.intercept_activity(_Returns(result))
        return await env.run(chain.execute_activity, cast(ExecuteActivityInput, None))

    assert (await run("take_snapshot", _snapshot(observed_at))).twin_id == "shop"
    await run("deliberate", {"intentions": []})
    await run("apply_step", None)  # not a tick activity

    assert value(metrics, "twinops_tick_duration_seconds_count", activity="take_snapshot") == 1
    assert value(metrics, "twinops_tick_duration_seconds_count", activity="deliberate") == 1
    assert value(metrics, "twinops_tick_duration_seconds_count", activity="apply_step") is None
    age = value(metrics, "twinops_snapshot_age_seconds", twin_id="shop")
    assert age is not None and 90 <= age < 120
    metrics.snapshot_taken("shop", observed_at - timedelta(hours=1))  # an older one (a retry) does not count
    later = value(metrics, "twinops_snapshot_age_seconds", twin_id="shop")
    assert later is not None and age <= later < 120


# -- the database at scrape time ----------------------------------------------------------------------


def _entry(n: int, risk: str, status: InboxStatus, created_at: datetime) -> InboxEntry:
    return InboxEntry(
        proposal_id=f"p-{n}",
        workflow_id=f"remediation-p-{n}",
        twin_id="shop",
        status=status,
        risk=risk,
        target=f"node-{n}",
        summary="scale",
        created_at=created_at,
    )


def test_queue_depth_and_oldest_pending_age_by_risk_are_read_from_the_database(engine: Engine) -> None:
    inbox = SqlApprovalInbox(engine)
    inbox.upsert_sync(_entry(1, "high", InboxStatus.PENDING, NOW - timedelta(minutes=30)))
    inbox.upsert_sync(_entry(2, "high", InboxStatus.ESCALATED, NOW - timedelta(minutes=50)))
    inbox.upsert_sync(_entry(3, "high", InboxStatus.COMPLETED, NOW - timedelta(hours=5)))  # closed: not waiting
    inbox.upsert_sync(_entry(4, "low", InboxStatus.PENDING, NOW - timedelta(minutes=2)))
    inbox.upsert_sync(_entry(5, "low", InboxStatus.EXECUTING, NOW - timedelta(hours=2)))  # approved: not waiting
    metrics = TwinopsMetrics(process=False)
    metrics.registry.register(DatabaseCollector(engine, clock=lambda: NOW))

    assert value(metrics, "twinops_database_up") == 1
    assert value(metrics, "twinops_queue_depth", risk="high") == 2
    assert value(metrics, "twinops_queue_depth", risk="low") == 1
    assert value(metrics, "twinops_queue_depth", risk="medium") == 0  # reported, not absent
    assert value(metrics, "twinops_queue_oldest_pending_age_seconds", risk="high") == 50 * 60
    assert value(metrics, "twinops_queue_oldest_pending_age_seconds", risk="low") == 2 * 60
    assert value(metrics, "twinops_queue_oldest_pending_age_seconds", risk="medium") == 0
    inbox.upsert_sync(_entry(2, "high", InboxStatus.REJECTED, NOW - timedelta(minutes=50)))
    assert value(metrics, "twinops_queue_depth", risk="high") == 1  # the next scrape sees the database now
    assert value(metrics, "twinops_queue_oldest_pending_age_seconds", risk="high") == 30 * 60


def test_head_lag_is_the_events_no_head_covers_and_their_age(engine: Engine, ledger: SqlAuditLedger) -> None:
    now = datetime.now(UTC) + timedelta(minutes=10)  # heads are signed at the wall clock's time
    metrics = TwinopsMetrics(process=False)
    metrics.registry.register(DatabaseCollector(engine, clock=lambda: now))
    assert value(metrics, "twinops_audit_unsigned_events") == 0
    assert value(metrics, "twinops_audit_unsigned_age_seconds") == 0
    assert value(metrics, "twinops_audit_head_age_seconds") is None  # no head yet: absent, not 0

    events = [step_event(i) for i in range(8)]  # a head at the first event, then every 5: at size 1 and 6
    for event in events:
        ledger.append_sync(event)
    head = ledger.latest_head()
    assert head is not None and head.tree_size == 6
    assert value(metrics, "twinops_audit_unsigned_events") == 2
    assert value(metrics, "twinops_audit_unsigned_age_seconds") == (now - events[6].time).total_seconds()
    assert value(metrics, "twinops_audit_head_age_seconds") == pytest.approx((now - head.time).total_seconds())

    ledger.publish_head()
    assert value(metrics, "twinops_audit_unsigned_events") == 0
    assert value(metrics, "twinops_audit_unsigned_age_seconds") == 0


def test_a_database_that_does_not_answer_is_database_up_0_and_no_queue(tmp_path: Path) -> None:
    unmigrated = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    metrics = TwinopsMetrics(process=False)
    metrics.registry.register(DatabaseCollector(unmigrated))
    assert value(metrics, "twinops_database_up") == 0
    assert value(metrics, "twinops_queue_depth", risk="high") is None
    unmigrated.dispose()


# -- serving ------------------------------------------------------------------------------------------


def test_the_worker_metrics_port_serves_metrics(tmp_path: Path) -> None:
    metrics = TwinopsMetrics()
    metrics.tick_phase("deliberate", 0.2)
    server = serve_metrics(metrics.registry, 0, "127.0.0.1")
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        parsed = {f.name: f for f in text_string_to_metric_families(answer.text)}
        assert parsed["twinops_tick_duration_seconds"].type == "histogram"
        assert "process_cpu_seconds" in parsed and "twinops_build_info" in parsed
    finally:
        server.close()
    with pytest.raises(httpx.ConnectError):  # closed: nothing listens there any more
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)


def test_the_worker_serves_metrics_only_when_its_port_is_set(tmp_path: Path) -> None:
    with serving_worker_metrics(Settings(home=tmp_path)) as none:
        assert none is None
    with serving_worker_metrics(Settings(home=tmp_path, worker_metrics_port=0)) as metrics:
        assert isinstance(metrics, TwinopsMetrics)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_api_serves_metrics_without_credentials(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, temporal_address=f"127.0.0.1:{_closed_port()}")
    context = await ApiContext.open(settings)
    context.inbox.upsert_sync(_entry(1, "medium", InboxStatus.PENDING, datetime.now(UTC)))
    app = create_app(settings, context=context)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            answer = await http.get("/metrics")
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/plain")
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(answer.text)
                for s in f.samples
            }
            assert found[("twinops_queue_depth", (("risk", "medium"),))] == 1
            assert found[("twinops_database_up", ())] == 1
            assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]
    finally:
        await context.close()


# -- a real worker ------------------------------------------------------------------------------------


def _waiting(metrics: TwinopsMetrics) -> float:
    return sum(value(metrics, "twinops_queue_depth", risk=risk) or 0 for risk in ("low", "medium", "high"))


@pytest.mark.integration
async def test_a_worker_with_metrics_reports_its_ticks_proposals_decisions_and_the_queue(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, policies_dir=policies_without_freezes(tmp_path / "policies"))
    services = Services.from_settings(settings, simulator=make_simulator("hidden_downstream.yaml"))
    services.notifier = RecordingNotifier()
    metrics = TwinopsMetrics()
    queue = f"test-{uuid.uuid4()}"
    try:
        async with running_worker(temporal.client, queue, services, metrics=metrics):
            loop = await temporal.client.start_workflow(
                AgentLoopWorkflow.run,
                AgentLoopInput(
                    twin_id="shop",
                    tick_seconds=0.5,
                    max_ticks=2,
                    timeouts=Timeouts(approval_seconds=60, expiry_seconds=60, verification_window_seconds=1),
                    approval_key=services.signer.public_key_b64,
                ),
                id=f"loop-{uuid.uuid4()}",
                task_queue=queue,
            )
            status = await loop.result()
            assert status.proposals_started == 1, status
            child = temporal.client.get_workflow_handle(next(iter(status.open.values())))
            await eventually(
                lambda: child.query(RemediationWorkflow.state), lambda s: s.stage == Stage.AWAITING_APPROVAL
            )
            await eventually(lambda: asyncio.to_thread(_waiting, metrics), lambda n: n == 1)  # the inbox row
            await signed_update(services.signer, child, "reject", Principal(id="alice", roles=["sre"]), "test over")
            await child.result()
    finally:
        await close_services(services)

    assert value(metrics, "twinops_tick_duration_seconds_count", activity="take_snapshot") == 2
    assert value(metrics, "twinops_tick_duration_seconds_count", activity="deliberate") == 2
    age = value(metrics, "twinops_snapshot_age_seconds", twin_id="shop")
    assert age is not None and 0 <= age < 60
    assert value(metrics, "twinops_audit_events_total", kind="proposed") == 1
    assert value(metrics, "twinops_audit_events_total", kind="rejected") == 1
    assert value(metrics, "twinops_proposal_outcomes_total", outcome="rejected") == 1
    decisions = value(metrics, "twinops_policy_decision_seconds_count", package="safety", engine="regorus")
    assert decisions is not None and decisions >= 1
    assert _waiting(metrics) == 0  # the database, read at this scrape


@pytest.mark.integration
async def test_the_temporal_sdk_serves_its_own_metrics_on_temporal_metrics_port(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    port = _closed_port()
    settings = Settings(home=tmp_path, temporal_address=temporal.info.address if temporal.info else "")
    assert sdk_metrics_runtime(Settings(home=tmp_path)) is None  # unset: the SDK's default runtime
    runtime = sdk_metrics_runtime(settings.model_copy(update={"temporal_metrics_port": port}), host="127.0.0.1")
    assert runtime is not None
    client = await connect(settings, runtime=runtime)
    await client.count_workflows()  # one call, so the SDK has something to count

    async def scrape() -> str:
        try:
            answer = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics", timeout=5)
        except httpx.HTTPError:
            return ""
        return answer.text

    text = await eventually(scrape, lambda t: "temporal_request" in t)
    assert "twinops_" not in text  # the SDK's endpoint is its own; ours are on /metrics of the API and worker


def _twinops_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    twinops = Path(sys.executable).with_name("twinops")
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(twinops), "worker", "--task-queue", f"test-{uuid.uuid4()}"], env=env, stdout=out, stderr=out
        )


@pytest.mark.integration
async def test_twinops_worker_serves_its_metrics_and_the_sdks_on_their_ports(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    assert temporal.info is not None
    ours, sdk = _closed_port(), _closed_port()
    env = {
        **os.environ,
        "TWINOPS_HOME": str(tmp_path),
        "TWINOPS_TEMPORAL_ADDRESS": temporal.info.address,
        "TWINOPS_WORKER_METRICS_PORT": str(ours),
        "TWINOPS_TEMPORAL_METRICS_PORT": str(sdk),
    }
    log = tmp_path / "worker.log"
    worker = _twinops_worker(env, log)

    async def scrape(port: int) -> str:
        try:
            answer = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics", timeout=5)
        except httpx.HTTPError:
            return ""
        return answer.text

    try:
        # Served from start-up; the database (queue, heads) once the worker runs.
        text = await eventually(lambda: scrape(ours), lambda t: "twinops_queue_depth" in t, within=60)
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"twinops_build_info", "twinops_audit_unsigned_events", "twinops_policy_failures"} <= families
        assert (await eventually(lambda: scrape(sdk), bool, within=30)).count("temporal_") > 0
        # SIGTERM once the worker has said it runs (its signal handlers are set from then on).
        await eventually(lambda: asyncio.to_thread(log.read_text), lambda t: "worker on task queue" in t)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0, log.read_text()
    assert f":{ours}/metrics" in log.read_text()
