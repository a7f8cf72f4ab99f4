"""`twinops playbooks run NAME --dry-run` prints what the playbook would do; without it, a run needs Temporal."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from controller.cli import app

runner = CliRunner()


def test_a_dry_run_prints_what_would_happen_and_creates_no_database(tmp_path: Path) -> None:
    env = {"TWINOPS_HOME": str(tmp_path / "home")}
    result = runner.invoke(app, ["playbooks", "run", "nightly-rightsize", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "dry run of nightly-rightsize v1 on shop" in result.stdout and "nothing was changed" in result.stdout
    assert "no demand history" in result.stdout
    doc = json.loads(
        runner.invoke(app, ["playbooks", "run", "nightly-rightsize", "--dry-run", "--json"], env=env).stdout
    )
    assert doc["playbook"] == "nightly-rightsize" and doc["plan"]["twin_id"] == "shop" and doc["decisions"] == {}
    assert not (tmp_path / "home" / "twinops.db").exists()


def test_an_unknown_playbook_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["playbooks", "run", "nope", "--dry-run"], env={"TWINOPS_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "no playbook 'nope'" in result.stderr


def test_run_without_dry_run_and_no_temporal_server_says_how_to_reach_one(tmp_path: Path) -> None:
    env = {"TWINOPS_HOME": str(tmp_path), "TWINOPS_TEMPORAL_ADDRESS": ""}
    result = runner.invoke(app, ["playbooks", "run", "nightly-rightsize"], env=env)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no Temporal server: set TWINOPS_TEMPORAL_ADDRESS or start the embedded stack")
