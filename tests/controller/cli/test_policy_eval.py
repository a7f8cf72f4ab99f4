"""`twinops policy eval` exits 0 on allow, 1 on deny, 2 on invalid input or engine error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app

CASES = Path(__file__).resolve().parents[2] / "policy_cases"


def case_input(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(json.loads((CASES / f"{name}.json").read_text())["input"]))
    return path


def evaluate(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["policy", "eval", "--json", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.fixture(autouse=True)
def _embedded_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINOPS_OPA_URL", raising=False)
    monkeypatch.delenv("TWINOPS_POLICIES_DIR", raising=False)


def test_allow_exits_0(tmp_path: Path) -> None:
    code, decision = evaluate("--input", str(case_input(tmp_path, "safety_small_scale_auto")))
    assert (code, decision["allow"]) == (0, True)


def test_deny_exits_1(tmp_path: Path) -> None:
    code, decision = evaluate("--input", str(case_input(tmp_path, "safety_unknown_node")))
    assert (code, decision["allow"]) == (1, False)


def test_an_approval_that_does_not_count_exits_1(tmp_path: Path) -> None:
    path = case_input(tmp_path, "approval_self")
    code, decision = evaluate("--package", "approval", "--input", str(path))
    assert (code, decision["counts"]) == (1, False)


def test_an_invalid_input_document_exits_2_and_still_denies(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"proposal": "not a proposal"}))
    code, decision = evaluate("--input", str(path))
    assert code == 2
    assert decision["allow"] is False  # the gate failed closed


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    assert evaluate("--input", str(tmp_path / "x.json"))[0] == 2
    assert evaluate("--input", str(tmp_path / "missing.json"))[0] == 2


def test_the_exit_codes_are_in_the_help() -> None:
    result = CliRunner().invoke(app, ["policy", "eval", "--help"], terminal_width=200)
    assert "0 allow" in result.stdout and "1 deny" in result.stdout and "2 invalid input" in result.stdout
