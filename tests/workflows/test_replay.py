"""Replay every captured workflow history against today's code: a non-deterministic change fails here."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import AgentLoopWorkflow, RemediationWorkflow

HISTORIES = sorted(Path(__file__).with_name("histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_there_is_a_history_for_each_workflow() -> None:
    names = {p.stem for p in HISTORIES}
    assert any(n.startswith("remediation") for n in names)
    assert "agent_loop" in names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[RemediationWorkflow, AgentLoopWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


@workflow.defn(name="RemediationWorkflow")
class ReorderedRemediation:
    """A 'refactor' that sleeps before recording the proposal: not replay-safe."""

    @workflow.run
    async def run(self, _input: object) -> None:
        await workflow.sleep(timedelta(seconds=1))


async def test_a_changed_workflow_is_caught() -> None:
    path = next(p for p in HISTORIES if p.stem.startswith("remediation"))
    replayer = Replayer(workflows=[ReorderedRemediation], data_converter=pydantic_data_converter)
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(_history(path))
