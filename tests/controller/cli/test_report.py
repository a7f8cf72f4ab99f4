"""`twinops report latest|RUN_ID`: a stored run's report as Markdown, HTML or JSON; clear errors, no new files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.adapters.playbook_runs import SqlPlaybookRunStore
from controller.app.playbook_reports import render_html, render_markdown
from controller.cli import app
from controller.core.db import create_engine, migrate
from controller.core.settings import Settings
from tests.controller.cli.conftest import twinops
from tests.controller.playbook_run_factory import full_report, small_report
from workflows.playbook_contracts import PlaybookRunReport

NEWEST = full_report("playbook-run-nightly-20261121T020000Z")  # ends at 02:12
OLDER = small_report("playbook-run-nightly-20261120T020000Z", ended_minutes=-24 * 60)
WEEKLY = small_report("playbook-run-weekly-20261121T010000Z", playbook="weekly", ended_minutes=-30)


def report(*args: str) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(app, ["report", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home: no database yet."""
    monkeypatch.delenv("TWINOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def stored(home: Path) -> Path:
    """A home whose database holds three runs of two playbooks."""
    engine = create_engine(Settings().resolved_database_url)
    migrate(engine)
    store = SqlPlaybookRunStore(engine)
    for run in (OLDER, NEWEST, WEEKLY):
        store.save_sync(run)
    engine.dispose()
    return home


def test_latest_is_the_newest_runs_markdown_on_stdout(stored: Path) -> None:
    result = report("latest")
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_markdown(NEWEST)
    assert f"**{NEWEST.summary()}**" in result.stdout.splitlines()


def test_latest_of_one_playbook(stored: Path) -> None:
    result = report("latest", "--playbook", "weekly")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Playbook weekly v1: succeeded\n")
    unknown = report("latest", "--playbook", "monthly")
    assert unknown.returncode == 2
    assert "no playbook run of playbook 'monthly' has been reported yet" in unknown.stderr


def test_a_run_by_id_in_each_format(stored: Path) -> None:
    md = report(OLDER.run_id)
    assert md.returncode == 0 and md.stdout == render_markdown(OLDER)
    as_json = report(OLDER.run_id, "--format", "json")
    assert as_json.returncode == 0 and PlaybookRunReport.model_validate_json(as_json.stdout) == OLDER
    html = report(NEWEST.run_id, "--format", "html")
    assert html.returncode == 0 and html.stdout == render_html(NEWEST)
    bad = report(OLDER.run_id, "--format", "pdf")
    assert bad.returncode == 2 and "pdf" in bad.stderr


def test_output_writes_the_file_and_says_so_on_stderr(stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "nightly.html"
    result = report("latest", "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8") == render_html(NEWEST)
    assert f"report of {NEWEST.run_id} written to {out}" in " ".join(result.stderr.split())
    unwritable = report("latest", "--output", str(tmp_path / "absent-dir" / "r.md"))
    assert unwritable.returncode == 2 and "absent-dir" in unwritable.stderr


def test_an_unknown_run_id_is_an_error_naming_it(stored: Path) -> None:
    result = report("playbook-run-nightly-19990101T000000Z")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown playbook run 'playbook-run-nightly-19990101T000000Z'" in result.stderr
    other = report(WEEKLY.run_id, "--playbook", "nightly")
    assert other.returncode == 2
    assert f"playbook run '{WEEKLY.run_id}' is a run of playbook 'weekly', not 'nightly'" in other.stderr


def test_no_database_is_an_error_and_creates_none(home: Path) -> None:
    result = report("latest")
    assert result.returncode == 2 and result.stdout == ""
    assert f"database {home / 'twinops.db'}: does not exist" in " ".join(result.stderr.split())
    assert list(home.iterdir()) == []


def test_a_database_no_run_has_reported_to_is_an_error(home: Path) -> None:
    engine = create_engine(Settings().resolved_database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    engine.dispose()
    result = report("latest")
    assert result.returncode == 2
    assert "no playbook run has been reported yet (no table playbook_runs)" in result.stderr
    engine = create_engine(Settings().resolved_database_url)
    migrate(engine)
    engine.dispose()
    empty = report("latest")
    assert empty.returncode == 2 and "no playbook run has been reported yet" in empty.stderr


def test_the_installed_command_reports_a_missing_database_in_one_line(tmp_path: Path) -> None:
    result = twinops(tmp_path, "report", "latest")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: database ") and "does not exist" in line
    assert not (tmp_path / "twinops.db").exists()


def test_the_lazy_help_is_the_commands_own() -> None:
    from controller.cli import _LAZY, load_command

    assert _LAZY["report"][2] == load_command("report").get_short_help_str(limit=1000)
    listed = CliRunner().invoke(app, ["--help"])
    assert "report" in listed.stdout
