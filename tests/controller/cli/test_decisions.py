"""approve / reject / cancel / show as an SRE runs them against a live stack: sentences, no log lines."""

from __future__ import annotations

import json

import pytest

from controller.adapters.temporal_server import TemporalRuntime
from tests.workflows.conftest import Stack, eventually, stage_of
from tests.workflows.test_cli_loop import started, twinops, users

pytestmark = pytest.mark.integration


async def test_reject_says_so_in_a_sentence_and_logs_nothing(stack: Stack, temporal: TemporalRuntime) -> None:
    tokens = users(stack)
    handle, proposal_id = await started(stack)
    short = proposal_id[:10]
    shown = await twinops(stack, temporal, tokens["victor"], "show", short, "--json")
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["plan"] and all(isinstance(step, str) for step in state["plan"])
    assert state["requirement"].startswith(f"{state['required_approvals']} required from sre, 0 given; still needed:")

    human = await twinops(stack, temporal, tokens["victor"], "show", short)
    assert human.returncode == 0 and human.stderr == "", human.stderr
    assert "plan:" in human.stdout and "approvals: " in human.stdout and "{'" not in human.stdout

    rejected = await twinops(stack, temporal, tokens["alice"], "reject", short, "--reason", "change freeze")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == f"rejected proposal {proposal_id}: change freeze"
    assert rejected.stderr == "", "no log line on stderr"
    assert (await handle.result()).stage.value == "rejected"


async def test_cancel_needs_a_reason_and_logs_nothing(stack: Stack, temporal: TemporalRuntime) -> None:
    tokens = users(stack)
    handle, proposal_id = await started(stack, verification_seconds=600)
    missing = await twinops(stack, temporal, tokens["alice"], "cancel", proposal_id)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    blank = await twinops(stack, temporal, tokens["alice"], "cancel", proposal_id, "--reason", " ")
    assert blank.returncode == 2 and len(blank.stderr.strip().splitlines()) == 1, blank.stderr
    cancelled = await twinops(stack, temporal, tokens["alice"], "cancel", proposal_id, "--reason", "wrong twin")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stderr == ""
    assert f"cancellation requested for {proposal_id}: wrong twin" in cancelled.stdout
    await eventually(lambda: stage_of(handle), lambda s: s == "cancelled")
