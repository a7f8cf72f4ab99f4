"""A real stack per test: dev server (session), SQLite ledger + inbox, regorus gate, simulated estate.

Only the pager is a fake (`RecordingNotifier`, behind the `Notifier` port); everything
else is the real adapter the product ships.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from agents import AgentState, Desires, Proposal, decide
from controller.adapters.live_twin import WallClockSimulatorSource, live_scenario
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.decision_signer import DecisionSigner
from controller.app.worker import Services, build_worker
from controller.core.settings import REPO_ROOT, Settings
from controller.testing import RecordingNotifier
from twin.scenario import load_scenario
from twin.simulator import Simulator
from workflows.contracts import ApproveInput, CancelInput, Principal, RejectInput

T = TypeVar("T")
SCENARIOS = REPO_ROOT / "twin" / "scenarios"


def policies_without_freezes(dest: Path, source: Path = REPO_ROOT / "policies") -> Path:
    """A copy of a bundle (the shipped one by default) with no freeze windows, so tests do not depend on the calendar.

    Freeze-window behaviour is covered by the Rego tests, the parity cases and test_trust's freeze test.
    """
    shutil.copytree(source, dest)
    data_file = dest / "data.json"
    data = json.loads(data_file.read_text())
    data["twinops"]["config"]["safety"]["freeze_windows"] = []
    data_file.write_text(json.dumps(data))
    return dest


@dataclass
class Stack:
    """Everything a workflow test touches."""

    client: Client
    task_queue: str
    settings: Settings
    services: Services
    simulator: Simulator
    notifier: RecordingNotifier
    worker: Worker

    def proposal(self, desires: Desires | None = None) -> Proposal:
        """What the real agent proposes for the estate right now."""
        source = WallClockSimulatorSource(self.simulator)
        source.advance()
        decision = decide(
            AgentState(), self.simulator.snapshot(), desires or self.services.desires, now=datetime.now(UTC)
        )
        assert decision.proposals, "the agent proposed nothing for this scenario"
        return decision.proposals[0]


def make_simulator(name: str) -> Simulator:
    """A scenario from twin/scenarios, started now so its snapshots are fresh."""
    return Simulator(live_scenario(load_scenario(SCENARIOS / name), datetime.now(UTC)))


@pytest.fixture
def scenario() -> str:
    """The scenario a test runs on; override with `@pytest.mark.parametrize('scenario', [...])`."""
    return "hidden_downstream.yaml"


@pytest_asyncio.fixture
async def stack(temporal: TemporalRuntime, tmp_path: Path, scenario: str) -> AsyncIterator[Stack]:
    """A worker on a fresh task queue over fresh stores."""
    settings = Settings(
        home=tmp_path,
        policies_dir=policies_without_freezes(tmp_path / "policies"),
        audit_head_every_events=5,
    )
    simulator = make_simulator(scenario)
    services = Services.from_settings(settings, simulator=simulator)
    notifier = RecordingNotifier()
    services.notifier = notifier
    queue = f"test-{uuid.uuid4()}"
    worker = build_worker(temporal.client, queue, services)
    async with worker:
        yield Stack(temporal.client, queue, settings, services, simulator, notifier, worker)


async def eventually(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 20.0) -> T:
    """Poll `probe` until `until(value)`; fail with the last value after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    value = await probe()
    while not until(value):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(0.1)
        value = await probe()
    return value


async def stage_of(handle: WorkflowHandle[Any, Any]) -> str:
    """The remediation's current stage, from its query."""
    from workflows import RemediationWorkflow

    state = await handle.query(RemediationWorkflow.state)
    return state.stage.value


async def signed_update(
    signer: DecisionSigner,
    handle: WorkflowHandle[Any, Any],
    kind: Literal["approve", "reject", "cancel"],
    principal: Principal,
    text: str = "",
) -> Any:
    """Send a decision as the approval service does: signed over the workflow's own proposal and plan."""
    from workflows import RemediationWorkflow

    state = await handle.query(RemediationWorkflow.state)
    signed = signer.sign(kind, proposal_id=state.proposal_id, plan_hash=state.plan_hash, principal=principal, text=text)
    if kind == "approve":
        return await handle.execute_update(
            RemediationWorkflow.approve, ApproveInput(principal=principal, comment=text, signed=signed)
        )
    if kind == "reject":
        return await handle.execute_update(
            RemediationWorkflow.reject, RejectInput(principal=principal, reason=text, signed=signed)
        )
    return await handle.execute_update(
        RemediationWorkflow.request_cancel, CancelInput(principal=principal, reason=text, signed=signed)
    )
