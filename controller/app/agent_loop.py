"""Starting the agent loop of a twin from settings (used by `twinops up` and the demo)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from controller.app.worker import Services
from controller.core.settings import Settings
from workflows import AgentLoopInput, AgentLoopWorkflow, Timeouts


def agent_loop_id(twin_id: str) -> str:
    """The workflow id of a twin's agent loop (one per twin)."""
    return f"agent-loop-{twin_id}"


def agent_loop_input(settings: Settings, services: Services, **overrides: object) -> AgentLoopInput:
    """The loop's input: twin, tick, timeouts from settings; SLOs and cool-down from the desires."""
    fields: dict[str, object] = {
        "twin_id": settings.twin_id,
        "agent_name": settings.agent_name,
        "tick_seconds": settings.tick_seconds,
        "timeouts": Timeouts(
            approval_seconds=settings.approval_timeout_seconds,
            expiry_seconds=settings.approval_expiry_seconds,
            verification_window_seconds=settings.verification_window_seconds,
            verification_settle_seconds=settings.verification_settle_seconds,
        ),
        "latency_slo_ms": dict(services.desires.latency_slo_ms),
        "cooldown_seconds": services.desires.cooldown_seconds,
        "approval_key": services.signer.public_key_b64,
    }
    fields.update(overrides)
    return AgentLoopInput.model_validate(fields)


async def start_agent_loop(
    client: Client,
    settings: Settings,
    services: Services,
    *,
    task_queue: str | None = None,
    replace_running: bool = False,
    **overrides: object,
) -> str:
    """Start the twin's loop (one per twin) and return its workflow id.

    An already running loop is kept, unless `replace_running`: a run-once task queue (the demo's)
    must not adopt a loop left running on another queue, where no worker will ever pick it up.
    """
    loop_input = agent_loop_input(settings, services, **overrides)
    workflow_id = agent_loop_id(loop_input.twin_id)
    await client.start_workflow(
        AgentLoopWorkflow.run,
        loop_input,
        id=workflow_id,
        task_queue=task_queue or settings.temporal_task_queue,
        id_conflict_policy=(
            WorkflowIDConflictPolicy.TERMINATE_EXISTING if replace_running else WorkflowIDConflictPolicy.USE_EXISTING
        ),
    )
    return workflow_id


async def stop_agent_loop(client: Client, workflow_id: str, *, wait_seconds: float = 15.0) -> None:
    """Cancel a loop and wait until it has ended (while its worker still runs); terminate it if it will not."""
    handle = client.get_workflow_handle(workflow_id)
    await handle.cancel()
    try:
        await asyncio.wait_for(handle.result(), timeout=wait_seconds)
    except TimeoutError:
        await handle.terminate("did not end within its cancellation grace period")
    except Exception:
        return
