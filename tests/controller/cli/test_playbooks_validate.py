"""`twinops playbooks validate`: exit 0 when every playbook loads, else one line per problem and exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from tests.controller.cli.conftest import twinops

REPO = Path(__file__).resolve().parents[3]
NIGHTLY = (REPO / "playbooks" / "nightly-rightsize.yaml").read_text()


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(app, ["playbooks", "validate", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_the_shipped_playbooks_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINOPS_PLAYBOOKS_DIR", raising=False)
    result = validate()
    assert result.returncode == 0, result.stderr
    for name in ("nightly-rightsize", "prescale-daily-peak", "drain-backlog"):
        assert f"valid playbook {name!r}" in result.stdout


def test_the_directory_comes_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "nightly-rightsize.yaml", NIGHTLY)
    monkeypatch.setenv("TWINOPS_PLAYBOOKS_DIR", str(tmp_path))
    result = validate()
    assert result.returncode == 0 and result.stdout.count("valid playbook") == 1, result.stdout


def test_an_empty_directory_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINOPS_PLAYBOOKS_DIR", str(tmp_path))
    result = validate()
    assert result.returncode == 0 and "no playbooks in" in result.stdout


def test_each_problem_is_one_line_with_file_line_and_field(tmp_path: Path) -> None:
    good = write(tmp_path, "nightly-rightsize.yaml", NIGHTLY)
    bad_text = NIGHTLY.replace("optimal_replicas(target=0.6", "optimal_replica(target=0.6").replace(
        "owner: sre", "owner: sre\ncolour: blue"
    )
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = write(bad_dir, "nightly-rightsize.yaml", bad_text)
    result = validate(str(good), str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    colour_line = bad_text.splitlines().index("colour: blue") + 1
    assert lines[0] == f"error: {bad}:{colour_line}: colour: unknown field 'colour'"
    assert lines[1].startswith(f"error: {bad}:") and ": steps[0].params.replicas: unknown function" in lines[1]
    assert "valid playbook 'nightly-rightsize'" in result.stdout  # the good one is still reported


def test_a_missing_file_and_a_misnamed_one_are_problems(tmp_path: Path) -> None:
    misnamed = write(tmp_path, "nightly.yaml", NIGHTLY)
    result = validate(str(tmp_path / "absent.yaml"), str(misnamed))
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.yaml'}: cannot read" in result.stderr
    assert f"{misnamed}:5: name: is 'nightly-rightsize'; the file says 'nightly'" in result.stderr


def test_not_utf8_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: \xff\n")
    result = validate(str(path))
    assert result.returncode == 2 and "not UTF-8" in result.stderr


def test_schema_prints_the_published_schema() -> None:
    result = CliRunner().invoke(app, ["playbooks", "schema"])
    assert result.exit_code == 0
    assert result.stdout == (REPO / "playbooks" / "schema.json").read_text()


def test_as_a_user_runs_it(tmp_path: Path) -> None:
    bad = write(tmp_path, "p.yaml", "name: p\nname: q\n")
    result = twinops(tmp_path, "playbooks", "validate", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {bad}:2: name: duplicate key 'name' (first on line 1)"
