"""The queue and `show` fit the terminal, say what approval still needs, and keep full text in --json."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from controller.adapters.inbox import SqlApprovalInbox
from controller.cli import _approval_views as views
from controller.cli import app
from controller.core.db import create_engine, migrate
from twin.actions import RestartAction, ScaleAction
from workflows import RemediationState, Stage
from workflows.contracts import StepState
from workflows.ports import InboxEntry, InboxStatus

LONG_SUMMARY = (
    "gateway is saturated (demand utilization 1.12) and checkout behind it would saturate next; "
    "scale both in one step so the hidden downstream bottleneck does not surface after the first fix "
) * 3


def entry(proposal_id: str = "p-0123456789abcdef0123", **fields: Any) -> InboxEntry:
    """An inbox entry as the workflow writes it."""
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "proposal_id": proposal_id,
        "workflow_id": f"remediation-{proposal_id}",
        "twin_id": "shop",
        "status": InboxStatus.PENDING,
        "risk": "medium",
        "target": "gateway",
        "summary": LONG_SUMMARY,
        "created_at": now,
        "deadline": now + timedelta(hours=1),
        "required_approvals": 2,
        "approvals": ["alice", "bob", "carol"],
    }
    values.update(fields)
    known = set(InboxEntry.model_fields)
    return InboxEntry(**{k: v for k, v in values.items() if k in known})


def render(renderable: Any, width: int = 80) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(renderable)
    return out.getvalue().splitlines()


def test_a_queue_row_is_one_line_at_80_columns_and_cut_with_an_ellipsis() -> None:
    lines = render(views.queue_table([entry("p-aaaaaaaaaaaaaaaaaaaa"), entry("p-aaaaaaaaaabbbbbbbbbb")]))
    rows = [line for line in lines if line.startswith("p-")]
    assert len(rows) == 2, "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert all("…" in row for row in rows)
    # ids shortened to their unique prefix, which every command accepts
    assert [row.split()[0] for row in rows] == ["p-aaaaaaaaaaa", "p-aaaaaaaaaab"]


def test_the_requirement_names_what_is_still_needed_not_just_a_count() -> None:
    owner = "a high-risk change needs an approval from the owning team ['edge']"
    words = views.requirement(2, ["alice", "bob", "carol"], groups=["sre"], pending=[owner])
    assert words == f"2 required from sre, 3 given; still needed: {owner}"
    assert views.requirement(2, ["a", "b", "c"], pending=[owner], compact=True) == f"3/2 · {owner}"
    assert views.requirement(2, ["alice"]) == "2 required, 1 given; still needed: 1 more needed"
    assert views.requirement(2, ["alice", "bob"], met=True) == "2 required, 2 given; quorum met"
    assert views.requirement(1, [], still_needed=0) == "1 required, 0 given"


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqlApprovalInbox:
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_TEMPORAL_ADDRESS", "TWINOPS_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    engine = create_engine(f"sqlite:///{(tmp_path / 'twinops.db').resolve()}")
    migrate(engine)
    return SqlApprovalInbox(engine)


def test_queue_json_keeps_the_full_text_and_the_requirement(inbox: SqlApprovalInbox) -> None:
    inbox.upsert_sync(entry(pending=["an approver from team edge"]))
    result = CliRunner().invoke(app, ["queue", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["summary"] == LONG_SUMMARY
    assert row["requirement"] == "2 required, 3 given; still needed: an approver from team edge"


def test_queue_table_fits_80_columns(inbox: SqlApprovalInbox) -> None:
    inbox.upsert_sync(entry())
    result = CliRunner().invoke(app, ["queue"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("p-")]
    assert len(rows) == 1 and len(rows[0]) <= 80, result.stdout


def state(**fields: Any) -> RemediationState:
    values: dict[str, Any] = {
        "proposal_id": "p-0123456789abcdef0123",
        "stage": Stage.AWAITING_APPROVAL,
        "risk": "medium",
        "required_approvals": 2,
        "approvals": ["alice"],
        "reasons": ["scale step within limits", "owning team edge must approve"],
        "steps_done": [
            StepState(
                index=0,
                action=ScaleAction(node="gateway", replicas=8),
                idempotency_key="k",
                applied=True,
                compensation=ScaleAction(node="gateway", replicas=4),
            )
        ],
        "actions": [ScaleAction(node="gateway", replicas=8), RestartAction(node="checkout")],
        "policy_reasons": ["scale step within limits", "owning team edge must approve"],
        "pending": ["an approver from team edge"],
        "approver_groups": ["sre"],
        "still_needed": 1,
    }
    values.update(fields)
    known = set(RemediationState.model_fields)
    return RemediationState(**{k: v for k, v in values.items() if k in known})


def test_show_prints_the_plan_in_words_the_policy_reasons_and_what_is_needed() -> None:
    text = "\n".join(render(_SHOW(state(), entry(plan="scale gateway -> 8\nrestart checkout")), width=200))
    assert "1. scale gateway -> 8" in text and "2. restart checkout" in text
    assert "owning team edge must approve" in text
    assert "approvals: 2 required from sre, 1 given; still needed: an approver from team edge" in text
    assert "step 0: scale gateway -> 8" in text and "undo: scale gateway -> 4" in text
    assert "{" not in text, "no Python dicts"


def test_show_json_has_the_plan_and_requirement_in_words() -> None:
    data = views.state_json(state(), entry(plan="scale gateway -> 8\nrestart checkout"))
    assert data["plan"] == ["scale gateway -> 8", "restart checkout"]
    assert data["requirement"].startswith("2 required from sre, 1 given; still needed: ")
    assert data["summary"] == LONG_SUMMARY


class _SHOW:
    """A renderable running `print_state` against the console that renders it."""

    def __init__(self, s: RemediationState, e: InboxEntry) -> None:
        self.s, self.e = s, e

    def __rich_console__(self, console: Console, options: Any) -> Any:
        views.print_state(self.s, self.e, console)
        return []


def test_approve_says_in_one_sentence_what_is_still_needed() -> None:
    from workflows import ApprovalResult

    counted = ApprovalResult(
        counted=True, quorum_met=False, approvals=["alice"], still_needed=1, reasons=["an approver from team edge"]
    )
    assert views.approval_sentence("p-1", counted) == (
        "approval counted for proposal p-1 (1 so far); still needed: an approver from team edge"
    )
    refused = ApprovalResult(counted=False, quorum_met=False, approvals=[], still_needed=2, reasons=["not in sre"])
    assert views.approval_sentence("p-1", refused) == "approval not counted for proposal p-1: not in sre"
    met = ApprovalResult(counted=True, quorum_met=True, approvals=["alice", "bob"], still_needed=0)
    assert views.approval_sentence("p-1", met) == "approved proposal p-1: quorum met, execution starts"


def test_queue_on_a_fresh_home_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "fresh"))
    monkeypatch.delenv("TWINOPS_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["queue", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_queue_on_a_current_schema_does_not_load_alembic(inbox: SqlApprovalInbox, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    inbox.upsert_sync(entry())
    probe = (
        "import sys\nsys.argv = ['twinops', 'queue', '--json']\nfrom controller.cli import _run\n"
        "code = _run()\nprint(code, 'alembic' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "TWINOPS_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert done.stderr.split()[-2:] == ["0", "False"], done.stderr
    assert [e["proposal_id"] for e in json.loads(done.stdout)] == [entry().proposal_id]
