"""Worker wiring: concrete adapters into the activity classes, workflows onto the task queue.

`Services` holds the adapters one process uses (ledger, gate, inbox, actuator, notifier,
twin source, desires, demand history, playbook run reports); `build_worker` registers the bound
activity methods and the three workflows (remediation, agent loop, playbook run) with the
OpenTelemetry interceptor and the structlog context binder. Given a `TwinopsMetrics`, the worker
also times the tick (`TickMetricsInterceptor`) and has the ledger and the gate report to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from agents import Desires, load_desires
from agents.playbook import FindingTrigger, Playbook
from controller.adapters.action_history import LedgerActionHistory
from controller.adapters.actuators import make_actuator
from controller.adapters.audit import NotifierWitness, SqlAuditLedger
from controller.adapters.demand_history import SqlDemandHistory
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.live_twin import WallClockSimulatorSource
from controller.adapters.metrics import TwinopsMetrics
from controller.adapters.notifiers import make_notifier
from controller.adapters.playbook_runs import SqlPlaybookRunStore
from controller.adapters.policy import FailClosedGate, make_policy_gate
from controller.adapters.preapprovals import SqlPreapprovalStore
from controller.app.decision_signer import DecisionSigner
from controller.app.playbooks import load_playbooks, playbook_files
from controller.core.db import create_engine, migrate
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from twin.contract import Snapshot
from twin.http_source import HttpSource
from twin.simulator import Simulator
from twin.sources import FileSource, TwinSource
from workflows import AgentActivities, AgentLoopWorkflow, RemediationActivities, RemediationWorkflow
from workflows.audit import AuditLedger
from workflows.playbook_activities import PlaybookActivities
from workflows.playbook_contracts import PlaybookRunStore, PreapprovalStore
from workflows.playbook_run import PlaybookRunWorkflow
from workflows.policy import PolicyGate
from workflows.ports import Actuator, ApprovalInbox, DemandHistoryStore, Notifier, OpenRemediations

log = structlog.get_logger(__name__)


class _BindContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity=info.activity_type,
            attempt=info.attempt,
        ):
            return await super().execute_activity(input)


class StructlogContextInterceptor(Interceptor):
    """Binds workflow id, run id, activity type and attempt into structlog's context in activities."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity execution."""
        return _BindContext(next)


_TICK_ACTIVITIES = frozenset({"take_snapshot", "deliberate"})


class _MeasureTick(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: TwinopsMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        if name not in _TICK_ACTIVITIES:
            return await super().execute_activity(input)
        started = time.monotonic()
        try:
            result = await super().execute_activity(input)
        finally:
            self._metrics.tick_phase(name, time.monotonic() - started)
        if isinstance(result, Snapshot):
            self._metrics.snapshot_taken(result.twin_id, result.observed_at)
        return result


class TickMetricsInterceptor(Interceptor):
    """Times the agent loop's tick activities (take_snapshot, deliberate) and notes each snapshot's observed_at."""

    def __init__(self, metrics: TwinopsMetrics) -> None:
        self.metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity execution (only the tick's two are measured)."""
        return _MeasureTick(next, self.metrics)


def make_twin_source(
    settings: Settings, simulator: Simulator | None = None, *, engine: Engine | None = None
) -> TwinSource:
    """The twin source the settings name; the simulator one wraps `simulator` (or the configured scenario).

    The push source reads the controller's database: `engine` when the caller has one (migrated), else its own."""
    if settings.twin_source == "simulator":
        if simulator is not None:
            return WallClockSimulatorSource(simulator)
        return WallClockSimulatorSource.from_file(settings.twin_scenario)
    if settings.twin_source == "file":
        if settings.twin_file is None:
            raise ConfigurationError("TWINOPS_TWIN_SOURCE=file needs TWINOPS_TWIN_FILE")
        return FileSource(Path(settings.twin_file))
    if settings.twin_source == "prometheus":
        # Imported here: only this source needs the model loader and its PromQL client.
        from controller.adapters.prometheus_twin import PrometheusSource
        from controller.adapters.twin_model import load_twin_model

        if not settings.prometheus_url:
            raise ConfigurationError("TWINOPS_TWIN_SOURCE=prometheus needs TWINOPS_PROMETHEUS_URL")
        if settings.twin_model is None:
            raise ConfigurationError(
                "TWINOPS_TWIN_SOURCE=prometheus needs TWINOPS_TWIN_MODEL (a twin model YAML: docs/twin-model.md)"
            )
        return PrometheusSource(
            settings.prometheus_url,
            load_twin_model(Path(settings.twin_model)),
            timeout_seconds=settings.prometheus_timeout_seconds,
            concurrency=settings.prometheus_concurrency,
        )
    if settings.twin_source == "push":
        from controller.adapters.pushed_snapshots import PushedTwinSource, SqlPushedSnapshots

        if engine is None:
            engine = create_engine(settings.resolved_database_url)
            migrate(engine)
        return PushedTwinSource(SqlPushedSnapshots(engine), settings.twin_id, settings.twin_max_age_seconds)
    if not settings.twin_url:
        raise ConfigurationError("TWINOPS_TWIN_SOURCE=http needs TWINOPS_TWIN_URL")
    return HttpSource(
        settings.twin_url,
        max_age_seconds=settings.twin_max_age_seconds,
        timeout_seconds=settings.twin_http_timeout_seconds,
        retries=settings.twin_http_retries,
    )


@dataclass
class Services:
    """The adapters one worker process uses."""

    ledger: AuditLedger
    gate: PolicyGate
    inbox: ApprovalInbox
    actuator: Actuator
    notifier: Notifier
    twin: TwinSource
    desires: Desires
    simulator: Simulator | None = None
    signer: DecisionSigner = field(default_factory=DecisionSigner.generate)
    """The approval service's key: its public half goes into every workflow input and checks old runs."""
    demand_history: DemandHistoryStore | None = None
    """Per-node demand history the agent's forecasts read (None: the agent decides without forecasts)."""
    playbook_runs: PlaybookRunStore | None = None
    """Where playbook run reports are kept (None: a run's report is only its workflow's result)."""
    preapprovals: PreapprovalStore | None = None
    """Pre-approvals of playbook runs (None: every step that needs a human waits for one)."""
    playbooks: tuple[Playbook, ...] = ()
    """The valid playbooks of the playbooks directory: the agent loop starts those a finding triggers."""

    @classmethod
    def from_settings(cls, settings: Settings, *, simulator: Simulator | None = None) -> Services:
        """Build every adapter from settings (SQLite/PostgreSQL, regorus/OPA, simulator/webhook, ...)."""
        engine: Engine = create_engine(settings.resolved_database_url)
        migrate(engine)
        twin = make_twin_source(settings, simulator, engine=engine)
        sim = twin.simulator if isinstance(twin, WallClockSimulatorSource) else simulator
        desires_text = settings.desires_file.read_text() if settings.desires_file else None
        demand_history: DemandHistoryStore
        if settings.twin_source == "prometheus":
            # Imported here, as the source is: Prometheus keeps the demand the forecasts read, no local store.
            from controller.adapters.prometheus_history import PrometheusDemandHistory
            from controller.adapters.prometheus_twin import PrometheusSource

            assert isinstance(twin, PrometheusSource)
            demand_history = PrometheusDemandHistory(
                twin, bucket_seconds=settings.demand_bucket_seconds, retention_seconds=settings.demand_retention_seconds
            )
        else:
            demand_history = SqlDemandHistory(
                engine,
                bucket_seconds=settings.demand_bucket_seconds,
                retention_seconds=settings.demand_retention_seconds,
            )
        return cls(
            ledger=SqlAuditLedger.from_settings(settings, migrate_schema=False),
            gate=make_policy_gate(settings),
            inbox=SqlApprovalInbox(engine),
            actuator=make_actuator(settings, sim),
            notifier=make_notifier(settings),
            twin=twin,
            desires=load_desires(desires_text),
            simulator=sim,
            signer=DecisionSigner.from_settings(settings),
            demand_history=demand_history,
            playbook_runs=SqlPlaybookRunStore(engine),
            preapprovals=SqlPreapprovalStore(engine),
            playbooks=finding_playbooks(settings),
        )


def finding_playbooks(settings: Settings) -> tuple[Playbook, ...]:
    """The valid playbooks with a finding trigger; an invalid file is logged and left out (`validate` names it)."""
    loaded = load_playbooks(playbook_files(settings.playbooks_dir), settings.playbooks_dir)
    for problem in loaded.problems:
        log.warning("playbook.invalid", problem=str(problem))
    return tuple(
        p for _, p in sorted(loaded.playbooks.items()) if any(isinstance(t, FindingTrigger) for t in p.triggers)
    )


def activities_of(services: Services) -> Sequence[Any]:
    """The bound activity methods a worker registers."""
    rem = RemediationActivities(
        services.ledger,
        services.gate,
        services.inbox,
        services.actuator,
        services.notifier,
        services.twin,
        approval_key=services.signer.public_key_b64,
        history=LedgerActionHistory(services.ledger) if isinstance(services.ledger, SqlAuditLedger) else None,
    )
    open_remediations = services.inbox if isinstance(services.inbox, OpenRemediations) else None
    agent = AgentActivities(
        services.twin, services.desires, services.demand_history, open_remediations, services.playbooks
    )
    playbook = PlaybookActivities(
        services.twin,
        services.desires,
        demand_history=services.demand_history,
        runs=services.playbook_runs,
        notifier=services.notifier,
        preapprovals=services.preapprovals,
        open_remediations=open_remediations,
    )
    return [
        rem.record_event,
        rem.evaluate_safety,
        rem.evaluate_approval,
        rem.recheck_safety,
        rem.check_decision,
        rem.update_inbox,
        rem.apply_step,
        rem.compensate_step,
        rem.notify,
        rem.verify_remediation,
        rem.await_goals,
        agent.take_snapshot,
        agent.deliberate,
        playbook.plan_playbook_run,
        playbook.claim_preapproval,
        playbook.finish_playbook_run,
    ]


def worker_options(settings: Settings) -> dict[str, Any]:
    """Worker concurrency from settings."""
    return {
        "max_concurrent_workflow_tasks": settings.worker_max_workflow_tasks,
        "max_concurrent_activities": settings.worker_max_activities,
    }


def build_worker(
    client: Client, task_queue: str, services: Services, *, metrics: TwinopsMetrics | None = None, **options: Any
) -> Worker:
    """A worker running every workflow and activity on `task_queue` (its tick measured into `metrics`, if given)."""
    interceptors: list[Interceptor] = [TracingInterceptor(), StructlogContextInterceptor()]
    if metrics is not None:
        interceptors.append(TickMetricsInterceptor(metrics))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RemediationWorkflow, AgentLoopWorkflow, PlaybookRunWorkflow],
        activities=activities_of(services),
        interceptors=interceptors,
        **options,
    )


def observed(services: Services, metrics: TwinopsMetrics) -> contextlib.ExitStack:
    """Report the ledger's appends and the gate's decisions to `metrics`, and the database's queue and heads."""
    stack = contextlib.ExitStack()
    if isinstance(services.ledger, SqlAuditLedger):
        stack.enter_context(services.ledger.observed_by(metrics))
        metrics.watch_database(services.ledger.engine)
    if isinstance(services.gate, FailClosedGate):
        stack.enter_context(services.gate.observed_by(metrics))
    return stack


@asynccontextmanager
async def running_worker(
    client: Client, task_queue: str, services: Services, *, metrics: TwinopsMetrics | None = None, **options: Any
) -> AsyncIterator[Worker]:
    """Run a worker, and the audit ledger's head timer beside it (a signed head every T seconds).

    Every head the ledger signs meanwhile also goes out through the notifier, outside the database.
    With `metrics`, the ledger, the policy gate and the tick report to it while the worker runs.
    """
    worker = build_worker(client, task_queue, services, metrics=metrics, **options)
    timer: asyncio.Task[None] | None = None
    witness: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if isinstance(services.ledger, SqlAuditLedger):
        timer = asyncio.create_task(services.ledger.publish_heads_periodically())
        witness = services.ledger.witnessed_by(NotifierWitness(services.notifier, asyncio.get_running_loop()))
    with witness, observed(services, metrics) if metrics is not None else contextlib.ExitStack():
        try:
            async with worker:
                yield worker
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            if isinstance(services.ledger, SqlAuditLedger):
                # Sign what this run appended since the last head, so a stopped system does not look
                # tampered with later (verification fails entries no head covers once the interval passed).
                await services.ledger.publish_final_head()
