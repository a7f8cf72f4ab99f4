"""Replay every kept history of every release against today's code.

A release's histories are what its running workflows have in Temporal when the next
release is deployed; each must replay on the new code, or an in-flight remediation
would fail with a non-determinism error after the upgrade (see CHANGELOG.md for the
versioning rule). The manifest freezes the histories of earlier releases, so they
cannot be re-captured to hide a break.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.history_store import (
    HISTORIES,
    all_history_files,
    current_version,
    load_manifest,
    sha256,
    version_key,
)
from workflows import AgentLoopWorkflow, PlaybookRunWorkflow, RemediationWorkflow

HISTORY_FILES = all_history_files()
SITUATIONS = {
    "remediation_completed",
    "remediation_rolled_back",
    "remediation_awaiting_approval",
    "remediation_escalated",
    "remediation_verifying",
    "remediation_mid_compensation",
    "agent_loop_mid_run",
}
"""What every release keeps: the ends and the in-flight states an upgrade can meet."""
SITUATIONS_SINCE = {"0.4.0": {"playbook_run_finished", "playbook_run_mid_run"}}
"""Situations of workflows a release added, kept from that release on."""


def situations(version: str) -> set[str]:
    """What release `version` must keep."""
    added = (
        s for since, names in SITUATIONS_SINCE.items() if version_key(version) >= version_key(since) for s in names
    )
    return SITUATIONS | set(added)


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(_id(path), path.read_text())


def test_every_release_keeps_the_situations_an_upgrade_meets() -> None:
    releases = load_manifest()["releases"]
    assert releases, "no release histories kept"
    for version, entry in releases.items():
        missing = situations(version) - {Path(name).stem for name in entry["histories"]}
        assert not missing, f"release {version} lacks histories: {sorted(missing)}"


def test_histories_of_earlier_releases_are_unchanged() -> None:
    """Every file the manifest names is there with its hash; nothing unlisted hides beside them."""
    releases = load_manifest()["releases"]
    current = version_key(current_version())
    for version, entry in releases.items():
        for name, digest in entry["histories"].items():
            path = HISTORIES / version / name
            assert path.exists(), f"history {version}/{name} was removed; histories of a release are kept for good"
            assert sha256(path) == digest, (
                f"history {version}/{name} changed; earlier releases' histories are never re-captured"
                if version_key(version) < current
                else f"history {version}/{name} differs from the manifest: capture with `make histories`"
            )
    listed = {f"{v}/{n}" for v, e in releases.items() for n in e["histories"]}
    unlisted = {_id(p) + ".json" for p in HISTORY_FILES} - listed
    assert not unlisted, f"histories not in MANIFEST.json: {sorted(unlisted)}"


def test_every_earlier_release_names_its_commit() -> None:
    current = version_key(current_version())
    for version, entry in load_manifest()["releases"].items():
        if version_key(version) < current:
            assert entry.get("commit"), f"release {version}: record its git commit in MANIFEST.json"


@pytest.mark.parametrize("path", HISTORY_FILES, ids=[_id(p) for p in HISTORY_FILES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[RemediationWorkflow, AgentLoopWorkflow, PlaybookRunWorkflow], data_converter=pydantic_data_converter
    )
    await replayer.replay_workflow(_history(path))


@workflow.defn(name="RemediationWorkflow")
class ReorderedRemediation:
    """A 'refactor' that sleeps before recording the proposal: not replay-safe."""

    @workflow.run
    async def run(self, _input: object) -> None:
        await workflow.sleep(timedelta(seconds=1))


async def test_a_changed_workflow_is_caught() -> None:
    path = next(p for p in HISTORY_FILES if p.stem.startswith("remediation"))
    replayer = Replayer(workflows=[ReorderedRemediation], data_converter=pydantic_data_converter)
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(_history(path))
