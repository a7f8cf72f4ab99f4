"""Alertmanager to the agent loop, all real: a Prometheus rule fires on the simulated estate, Alertmanager
posts to the API over HTTP, the loop ticks at once and the proposal is pending long before its next tick.

The estate is the simulator behind its exporter (`twinops twin serve-metrics`): Prometheus scrapes it,
the worker reads its twin over HTTP (/snapshot) and acts on it through the webhook actuator (/actions).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.common import WorkflowIDConflictPolicy

from agents import AgentState, decide
from controller.adapters.actuators import WebhookActuator
from controller.adapters.identity import Identities
from controller.adapters.prometheus_process import alertmanager_server, prometheus_server
from controller.adapters.sim_exporter import SimulatorExporter
from controller.adapters.temporal_server import TemporalRuntime
from controller.api.server import running_api
from controller.app.agent_loop import agent_loop_id
from controller.app.worker import Services, build_worker
from controller.core.db import create_engine, migrate
from controller.core.errors import NotFoundError
from controller.core.settings import REPO_ROOT, Settings
from tests.promstack import requires_alertmanager, requires_prometheus
from tests.workflows.conftest import eventually, policies_without_freezes
from twin.actions import Action
from workflows import AgentLoopInput, AgentLoopWorkflow, Timeouts
from workflows.ports import InboxEntry, InboxStatus

pytestmark = [pytest.mark.integration, requires_prometheus, requires_alertmanager]

TICK = 600.0
"""The loop's periodic tick here: a proposal within seconds can only come from the alert."""

RULES = {
    "groups": [
        {
            "name": "estate",
            "interval": "1s",
            "rules": [
                {
                    "alert": "ServiceSaturated",
                    "expr": "service_utilization_ratio > 0.97",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "{{ $labels.service }} is at {{ $value | humanizePercentage }} busy"},
                }
            ],
        }
    ]
}


@pytest_asyncio.fixture
async def estate(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    secret = secrets.token_hex(16)
    with SimulatorExporter.from_file(REPO_ROOT / "twin/scenarios/hidden_downstream.yaml", secret=secret) as exporter:
        settings = Settings(
            home=tmp_path,
            policies_dir=policies_without_freezes(tmp_path / "policies"),
            twin_source="http",
            twin_url=f"{exporter.url}/snapshot",
            actuator="webhook",
            actuator_url=f"{exporter.url}/actions",
            actuator_secret=secret,
            api_port=0,
        )
        engine = create_engine(settings.resolved_database_url)
        migrate(engine)
        token = Identities(engine).add_user("alertmanager", "system")
        services = Services.from_settings(settings)
        queue = f"test-{uuid.uuid4()}"
        async with build_worker(temporal.client, queue, services), running_api(settings, temporal.client) as api:
            yield {"exporter": exporter, "settings": settings, "services": services, "queue": queue,
                   "api": api, "token": token, "secret": secret}  # fmt: skip


async def _apply(exporter: SimulatorExporter, secret: str, actions: list[Action]) -> list[Action]:
    """Apply `actions` to the estate through its actuator endpoint; return their undo actions."""
    undo: list[Action] = []
    async with WebhookActuator(f"{exporter.url}/actions", secret, timeout=10) as actuator:
        for action in actions:
            outcome = await actuator.apply(f"test-{uuid.uuid4()}", action)
            assert outcome.undo is not None
            undo.append(outcome.undo)
    return undo


async def _row(services: Services, proposal_id: str) -> InboxEntry | None:
    """The proposal's inbox row; None until the workflow's activity wrote it."""
    try:
        return await services.inbox.aget(proposal_id)  # type: ignore[attr-defined, no-any-return]
    except NotFoundError:
        return None


async def test_a_firing_alert_gets_a_proposal_pending_long_before_the_tick(
    estate: dict[str, Any], temporal: TemporalRuntime, tmp_path: Path
) -> None:
    exporter: SimulatorExporter = estate["exporter"]
    services: Services = estate["services"]
    fix = decide(AgentState(), exporter.snapshot(), services.desires, now=datetime.now(UTC)).proposals[0]
    trouble = await _apply(exporter, estate["secret"], list(fix.actions))  # healthy now
    loop = await temporal.client.start_workflow(
        AgentLoopWorkflow.run,
        AgentLoopInput(
            twin_id="shop",
            tick_seconds=TICK,
            approval_key=services.signer.public_key_b64,
            timeouts=Timeouts(approval_seconds=300, expiry_seconds=300, verification_window_seconds=1),
        ),
        id=agent_loop_id("shop"),
        task_queue=estate["queue"],
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    try:
        await eventually(lambda: loop.query(AgentLoopWorkflow.state), lambda s: s.ticks_done >= 1 and bool(s.nodes))
        rules = tmp_path / "rules.yaml"
        rules.write_text(yaml.safe_dump(RULES))
        hook = f"{estate['api'].url}/api/v1/alerts"
        with (
            alertmanager_server(tmp_path / "am", hook, bearer_token=estate["token"]) as am,
            prometheus_server(
                tmp_path / "prom",
                [exporter.url.removeprefix("http://")],
                rule_files=[rules],
                alertmanager=am.url.removeprefix("http://"),
            ),
        ):
            await _apply(exporter, estate["secret"], trouble)  # the trouble comes back
            began = time.monotonic()
            status = await eventually(
                lambda: loop.query(AgentLoopWorkflow.state), lambda s: s.proposals_started >= 1, within=60
            )
            target = fix.target
            proposal_id = status.open[target].removeprefix("remediation-")
            entry = await eventually(
                lambda: _row(services, proposal_id), lambda e: e is not None and e.status is InboxStatus.PENDING
            )
            assert entry is not None
            took = time.monotonic() - began
        assert status.woken >= 1 and status.ticks_done >= 2, status
        print(f"trouble back -> alert -> proposal pending: {took:.1f}s (tick {TICK:.0f}s)")
        assert took < TICK / 10, f"pending after {took:.1f}s"
        assert [a.name for a in status.alerts] and all(a.posted_by == "alertmanager" for a in status.alerts)
        trail = await services.ledger.trail(entry.proposal_id)
        assert "Paged: alertmanager alert ServiceSaturated firing on" in trail[0].payload["rationale"]
    finally:
        final = await loop.query(AgentLoopWorkflow.state)
        await loop.terminate("test over")
        for wid in set(final.open.values()):
            await temporal.client.get_workflow_handle(wid).terminate("test over")
