"""`twinops playbooks preapprove NAME --run-at --expires` and `twinops playbooks preapprovals`: output and refusals.

The CLI runs in process (Typer's CliRunner) over a SQLite database under the test's home and a
playbooks folder holding trim-by-hand; users are added with `Identities`, as `twinops users add` does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from controller.adapters.identity import Identities
from controller.cli import app
from controller.core.db import create_engine, migrate
from controller.core.settings import Settings
from tests.workflows.test_playbook_preapproval import PLAYBOOK

NAME = "trim-by-hand"
Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich fixes a console's width when the CLI module is first imported (from COLUMNS then); in one
    pytest process that depends on which test imported it first, so the tables get a known width here."""
    from controller.cli import _common

    monkeypatch.setattr(_common.console, "width", 200)


def at(minutes: float) -> str:
    """Now plus `minutes`, ISO 8601 in UTC to the second."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    """vera (viewer), alice and bob (approvers) in the database under the test's home."""
    engine = create_engine(Settings(home=tmp_path / "home").resolved_database_url)
    migrate(engine)
    ids = Identities(engine)
    found = {
        "vera": ids.add_user("vera", "viewer", "edge"),
        "alice": ids.add_user("alice", "approver", "edge", ["sre"]),
        "bob": ids.add_user("bob", "approver", "payments", ["sre"]),
    }
    engine.dispose()
    return found


@pytest.fixture
def run(tmp_path: Path, tokens: dict[str, str]) -> Run:
    """`twinops ARGS...` as `user` (None: no TWINOPS_TOKEN), with no other TWINOPS_* variable from outside."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / f"{NAME}.yaml").write_text(PLAYBOOK)
    outside: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TWINOPS_")}
    # Wide enough that the list's table shows whole ids and times (rich reads COLUMNS).
    base = {**outside, "TWINOPS_HOME": str(tmp_path / "home"), "TWINOPS_PLAYBOOKS_DIR": str(folder), "COLUMNS": "200"}

    def invoke(*args: str, user: str | None = None) -> Result:
        env = {**base, "TWINOPS_TOKEN": tokens[user] if user else None}
        return CliRunner().invoke(app, ["playbooks", *args], env=env, terminal_width=200)

    return invoke


def refused(result: Result, *needles: str) -> None:
    """Exit 2 with one line on stderr that says what is wrong."""
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line


def test_approvers_pre_approve_one_run_and_the_list_shows_it(run: Run) -> None:
    run_at, expires = at(60), at(120)
    first = run("preapprove", NAME, "--run-at", run_at, "--expires", expires, "--comment", "fine", user="alice")
    assert first.exit_code == 0, first.output
    match = re.fullmatch(
        rf"pre-approved (pa-[0-9a-f]+): {NAME} v1 run at {re.escape(run_at)}, until {re.escape(expires)}; "
        r"approvals so far: alice",
        first.stdout.strip(),
    )
    assert match, first.stdout
    grant_id = match.group(1)
    second = run("preapprove", NAME, "--run-at", run_at, "--expires", at(180), user="bob")
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().startswith(f"pre-approved {grant_id}: ")
    assert second.stdout.strip().endswith(f"until {expires}; approvals so far: alice, bob")  # alice's window

    table = run("preapprovals", user="vera")
    assert table.exit_code == 0, table.output
    [row] = [line for line in table.stdout.splitlines() if grant_id in line]
    assert f"{NAME} v1" in row and run_at in row and "alice, bob" in row and "open" in row

    listed = run("preapprovals", NAME, "--json", user="vera")
    assert listed.exit_code == 0, listed.output
    [doc] = json.loads(listed.stdout)
    grant = doc["grant"]
    assert (grant["id"], grant["playbook"], doc["created_by"], doc["used_by_run"]) == (grant_id, NAME, "alice", None)
    assert [(a["principal"]["id"], a["text"]) for a in grant["approvals"]] == [("alice", "fine"), ("bob", "")]
    other = run("preapprovals", "nightly", "--json", user="vera")
    assert other.exit_code == 0 and json.loads(other.stdout) == []


def test_without_a_token_it_says_how_to_get_one(run: Run) -> None:
    refused(run("preapprove", NAME, "--run-at", at(60), "--expires", at(120)), "set TWINOPS_TOKEN")
    refused(run("preapprovals"), "set TWINOPS_TOKEN")


def test_a_viewer_cannot_pre_approve(run: Run) -> None:
    result = run("preapprove", NAME, "--run-at", at(60), "--expires", at(120), user="vera")
    refused(result, "user 'vera' (viewer) needs the approver role to pre-approve playbook runs")
    assert json.loads(run("preapprovals", "--json", user="vera").stdout) == []


def test_a_run_in_the_past_or_without_a_zone_is_refused(run: Run) -> None:
    past = at(-60)
    refused(
        run("preapprove", NAME, "--run-at", past, "--expires", at(60), user="alice"),
        f"--run-at {past} is in the past",
    )
    refused(
        run("preapprove", NAME, "--run-at", "2030-01-01T02:30:00", "--expires", at(60), user="alice"),
        "--run-at '2030-01-01T02:30:00': give a time zone",
    )
    assert json.loads(run("preapprovals", "--json", user="alice").stdout) == []


def test_an_unknown_playbook_is_refused_naming_the_known_ones(run: Run) -> None:
    result = run("preapprove", "nope", "--run-at", at(60), "--expires", at(120), user="alice")
    refused(result, "no playbook 'nope' here (known: trim-by-hand)")
