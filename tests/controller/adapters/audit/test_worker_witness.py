"""The worker publishes every head its ledger signs through its notifier (a witness outside the database)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from controller.adapters.audit import SqlAuditLedger
from controller.adapters.notifiers import LogNotifier
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.worker import Services, running_worker
from controller.core.settings import Settings
from tests.controller.adapters.audit.factory import step_event

pytestmark = pytest.mark.integration


async def test_heads_signed_while_the_worker_runs_reach_the_notifier(temporal: TemporalRuntime, tmp_path: Path) -> None:
    services = Services.from_settings(Settings(home=tmp_path, audit_head_every_events=2))
    services.notifier = LogNotifier()
    ledger = services.ledger
    assert isinstance(ledger, SqlAuditLedger)
    with capture_logs() as logs:
        async with running_worker(temporal.client, f"test-{uuid.uuid4()}", services):
            for i in range(4):
                await ledger.append(step_event(i))  # heads at 1 and 3; seq 3 waits for the next
            for _ in range(100):
                if len([e for e in logs if e.get("kind") == "audit_checkpoint"]) == 2:
                    break
                await asyncio.sleep(0.02)
        for _ in range(100):  # stopping signed a head over seq 3 and sent it
            if len([e for e in logs if e.get("kind") == "audit_checkpoint"]) == 3:
                break
            await asyncio.sleep(0.02)
        for i in (4, 5):
            await ledger.append(step_event(i))  # after the worker stopped: the head at 6 is not sent
        await asyncio.sleep(0.05)
    sent = [e["text"] for e in logs if e["event"] == "notification" and e.get("kind") == "audit_checkpoint"]
    assert [h.tree_size for h in ledger.heads()] == [1, 3, 4, 6]
    assert sent == [h.checkpoint for h in ledger.heads()[:3]]
