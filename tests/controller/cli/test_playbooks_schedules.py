"""`twinops playbooks sync | list | pause | unpause | backfill | run` against the dev server: what they print.

The CLI runs in process (Typer's CliRunner) in a worker thread, so a stand-in worker keeps running on the test's
event loop while `run --wait` waits. Playbooks are copies of the repo's under names unique to each test.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from typer.testing import CliRunner, Result

from controller.adapters.temporal_server import TemporalRuntime
from controller.cli import app
from tests.controller.app.test_playbook_schedules import (
    REPO_NAMES,
    StandInRun,
    copy_playbooks,
    listed,
    remove_schedules_and_runs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich fixes a console's width when the CLI module is first imported (from COLUMNS then); in one
    pytest process that depends on which test imported it first, so the tables get a known width here."""
    from controller.cli import _common

    monkeypatch.setattr(_common.console, "width", 200)


@dataclass
class Cli:
    """Runs `twinops` in process against the dev server, over this test's playbooks directory."""

    client: Client
    directory: Path
    tag: str
    env: dict[str, str | None]
    started: list[str] = field(default_factory=list)

    def name(self, repo_name: str) -> str:
        return f"{repo_name}-{self.tag}"

    def edit(self, repo_name: str, old: str, new: str) -> None:
        path = self.directory / f"{self.name(repo_name)}.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    async def __call__(self, *args: str) -> Result:
        return await asyncio.to_thread(lambda: CliRunner().invoke(app, list(args), env=self.env, terminal_width=200))


@pytest.fixture
async def cli(tmp_path: Path, temporal: TemporalRuntime) -> AsyncIterator[Cli]:
    assert temporal.info is not None
    tag = uuid.uuid4().hex[:8]
    copy_playbooks(tmp_path / "playbooks", tag)
    env: dict[str, str | None] = {
        "TWINOPS_HOME": str(tmp_path / "home"),
        "TWINOPS_TEMPORAL_ADDRESS": temporal.info.address,
        "TWINOPS_PLAYBOOKS_DIR": str(tmp_path / "playbooks"),
        "TWINOPS_TEMPORAL_TASK_QUEUE": f"test-{tag}",
        "TWINOPS_DESIRES_FILE": None,
        "COLUMNS": "200",
    }
    runner = Cli(temporal.client, tmp_path / "playbooks", tag, env)
    try:
        yield runner
    finally:
        await remove_schedules_and_runs(temporal.client, tag, runner.started)


def ok(result: Result) -> list[str]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == "", "nothing on stderr"
    return result.stdout.splitlines()


def refused(result: Result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: "), line
    return line


async def test_sync_prints_one_line_per_change_then_no_changes(cli: Cli) -> None:
    creates = [
        f"create playbook-{cli.name('drain-backlog')}: cron '*/15 * * * *' UTC; version 2",
        f"create playbook-{cli.name('nightly-rightsize')}: cron '30 2 * * *' UTC; version 1",
        f"create playbook-{cli.name('prescale-daily-peak')}: cron '30 7 * * MON-FRI' Europe/Berlin; version 1",
    ]
    dry = ok(await cli("playbooks", "sync", "--dry-run"))
    assert [line for line in dry if cli.tag in line] == creates
    assert dry[-1] == "dry run: nothing was changed"
    done = ok(await cli("playbooks", "sync"))
    assert [line for line in done if cli.tag in line] == creates
    assert "dry run: nothing was changed" not in done
    assert ok(await cli("playbooks", "sync")) == ["no changes"]

    cli.edit("nightly-rightsize", 'cron: "30 2 * * *"', 'cron: "45 3 * * *"')
    cli.edit("nightly-rightsize", "version: 1", "version: 2")
    assert ok(await cli("playbooks", "sync", "--dry-run")) == [
        f"update playbook-{cli.name('nightly-rightsize')}: cron '30 2 * * *' -> '45 3 * * *'; version 1 -> 2",
        "dry run: nothing was changed",
    ]
    ok(await cli("playbooks", "sync"))
    assert ok(await cli("playbooks", "sync")) == ["no changes"]


async def test_sync_with_an_invalid_file_syncs_the_rest_says_what_it_left_alone_and_exits_2(cli: Cli) -> None:
    ok(await cli("playbooks", "sync"))
    await listed(cli.client, {f"playbook-{cli.name(n)}" for n in REPO_NAMES})
    cli.edit("nightly-rightsize", "max_nodes: 10", "max_nodes: ten")
    cli.edit("drain-backlog", "version: 2", "version: 3")
    result = await cli("playbooks", "sync")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    [problem] = result.stderr.splitlines()
    assert re.fullmatch(
        rf"error: playbooks/{cli.name('nightly-rightsize')}\.yaml:\d+(:\d+)?: limits\.max_nodes: .+", problem
    )
    assert result.stdout.splitlines() == [
        f"update playbook-{cli.name('drain-backlog')}: version 2 -> 3",
        f"left alone playbook-{cli.name('nightly-rightsize')}: "
        f"{cli.name('nightly-rightsize')}.yaml does not load; its schedule is left alone",
    ]
    again = await cli("playbooks", "sync")
    assert again.exit_code == 2 and again.stdout.splitlines()[-1] == "no changes"


async def test_list_prints_a_table_and_json(cli: Cli) -> None:
    ok(await cli("playbooks", "sync"))
    nightly = cli.name("nightly-rightsize")
    assert ok(await cli("playbooks", "pause", nightly, "--note", "change freeze")) == [f"paused playbook-{nightly}"]

    rows = {row["name"]: row for row in json.loads("\n".join(ok(await cli("playbooks", "list", "--json"))))}
    assert {n for n in rows if cli.tag in n} == {cli.name(n) for n in REPO_NAMES}
    assert rows[nightly] | {"next_run": None} == {
        "name": nightly,
        "version": 1,
        "schedule_id": f"playbook-{nightly}",
        "schedule": "30 2 * * * UTC",
        "paused": True,
        "note": "change freeze",
        "next_run": None,
        "last_run": None,
        "synced": True,
        "problem": None,
    }
    drain = rows[cli.name("drain-backlog")]
    assert not drain["paused"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:(00|15|30|45):00Z", drain["next_run"])

    table = ok(await cli("playbooks", "list"))
    header = [cell.strip() for cell in table[1].strip("┃").split("┃")]
    assert header == ["playbook", "version", "schedule", "state", "next run", "last run"]
    [paused] = [line for line in table if nightly in line]
    assert "30 2 * * * UTC" in paused and "paused: change freeze" in paused
    [active] = [line for line in table if cli.name("drain-backlog") in line]
    assert "*/15 * * * * UTC" in active and "active" in active
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:(00|15|30|45):00Z", active)

    assert ok(await cli("playbooks", "unpause", nightly)) == [f"unpaused playbook-{nightly}"]
    rows = {row["name"]: row for row in json.loads("\n".join(ok(await cli("playbooks", "list", "--json"))))}
    assert rows[nightly]["paused"] is False and rows[nightly]["next_run"].endswith("T02:30:00Z")


async def test_unknown_names_and_bad_times_are_one_line_errors(cli: Cli) -> None:
    nope = f"nope-{cli.tag}"
    expected = f"error: no schedule for playbook '{nope}' (`twinops playbooks sync` creates them)"
    assert refused(await cli("playbooks", "pause", nope)) == expected
    assert refused(await cli("playbooks", "unpause", nope, "--note", "x")) == expected
    window = ("--start", "2025-01-06T00:00:00Z", "--end", "2025-01-07T00:00:00Z")
    assert refused(await cli("playbooks", "backfill", nope, *window)) == expected
    ran = refused(await cli("playbooks", "run", nope))
    assert ran.startswith("error: ") and f"/{nope}.yaml: no playbook '{nope}' here (known: " in ran

    name = cli.name("nightly-rightsize")
    naive = await cli("playbooks", "backfill", name, "--start", "2025-01-06T00:00:00", "--end", "2025-01-07T00:00:00Z")
    assert refused(naive) == (
        "error: --start '2025-01-06T00:00:00': give a time zone (Z for UTC, or an offset such as +01:00)"
    )
    reversed_ = await cli(
        "playbooks", "backfill", name, "--start", "2025-01-07T00:00:00Z", "--end", "2025-01-06T00:00Z"
    )
    assert refused(reversed_) == "error: --start 2025-01-07T00:00:00Z is not before --end 2025-01-06T00:00Z"
    garbled = await cli("playbooks", "backfill", name, "--start", "yesterday", "--end", "2025-01-06T00:00Z")
    assert refused(garbled) == "error: --start 'yesterday': not an ISO 8601 time (2025-01-06T02:30:00Z)"


async def test_backfill_says_what_it_started(cli: Cli) -> None:
    ok(await cli("playbooks", "sync"))
    name = cli.name("nightly-rightsize")
    window = ("--start", "2025-01-06T00:00:00+01:00", "--end", "2025-01-07T03:00:00Z")
    assert ok(await cli("playbooks", "backfill", name, *window)) == [
        f"backfilled playbook-{name} from 2025-01-06T00:00:00+01:00 to 2025-01-07T03:00:00+00:00 "
        "(runs start one after another)"
    ]


async def test_run_prints_the_workflow_id_and_with_wait_the_summary(cli: Cli) -> None:
    name = cli.name("nightly-rightsize")
    run_id = re.compile(rf"playbook-run-{name}-\d{{8}}T\d{{6}}Z")
    [started] = ok(await cli("playbooks", "run", name))
    assert run_id.fullmatch(started)
    cli.started.append(started)
    await asyncio.sleep(1)  # manual run ids are per second
    as_json = json.loads("\n".join(ok(await cli("playbooks", "run", name, "--json"))))
    assert run_id.fullmatch(as_json["workflow_id"])
    cli.started.append(as_json["workflow_id"])
    await asyncio.sleep(1)

    async with Worker(
        cli.client,
        task_queue=str(cli.env["TWINOPS_TEMPORAL_TASK_QUEUE"]),
        workflows=[StandInRun],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        workflow_id, summary = ok(await cli("playbooks", "run", name, "--wait"))
    assert run_id.fullmatch(workflow_id)
    assert summary == f"playbook {name} v1: succeeded (no matching node)"
