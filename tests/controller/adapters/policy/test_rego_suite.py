"""The bundle's own Rego tests, run through the project's runner: `make test` fails when one fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.adapters.policy import format_report, run_rego_tests
from controller.cli.policy import app

from .conftest import POLICIES, MakeBundle


def test_every_rego_test_in_the_bundle_passes() -> None:
    report = run_rego_tests(POLICIES)
    assert report.ok, "\n" + format_report(report, verbose=False)


def test_bundle_has_at_least_forty_tests_across_both_packages() -> None:
    names = [r.name for r in run_rego_tests(POLICIES).results]
    assert len(names) >= 40
    assert any(n.startswith("data.twinops.safety.test_") for n in names)
    assert any(n.startswith("data.twinops.approval.test_") for n in names)


FAILING = """package twinops.demo
import rego.v1
test_true if { 1 == 1 }
test_false if { 1 == 2 }
test_error if { 1 / "x" == 0 }
"""


def test_runner_reports_pass_fail_and_error_per_test(make_bundle: MakeBundle) -> None:
    report = run_rego_tests(make_bundle({"demo/demo_test.rego": FAILING}))
    statuses = {r.name.rsplit(".", 1)[1]: r.status for r in report.results}
    assert statuses["test_true"] == "PASS"
    assert statuses["test_false"] == "FAIL"
    assert statuses["test_error"] in {"FAIL", "ERROR"}  # regorus leaves a type error undefined
    assert (report.passed, report.failed, report.ok) == (1, 2, False)
    text = format_report(report)
    assert "data.twinops.demo.test_true: PASS" in text
    assert "FAIL: 2/3" in text


def test_runner_reports_a_bundle_that_does_not_compile(make_bundle: MakeBundle) -> None:
    report = run_rego_tests(make_bundle({"x/x_test.rego": "package twinops.x\ntest_a if {"}))
    assert not report.ok
    assert report.results[0].status == "ERROR"
    assert "x/x_test.rego" in report.results[0].error


def test_runner_reports_a_bundle_without_data_json(make_bundle: MakeBundle) -> None:
    report = run_rego_tests(make_bundle({"demo/demo_test.rego": FAILING}, data=None))
    assert not report.ok
    assert [r.status for r in report.results] == ["ERROR"]
    assert "no data.json" in report.results[0].error


def test_cli_policy_test_exits_non_zero_on_failure(make_bundle: MakeBundle) -> None:
    result = CliRunner().invoke(app, ["test", "--dir", str(make_bundle({"demo/demo_test.rego": FAILING}))])
    assert result.exit_code == 1
    assert "data.twinops.demo.test_false: FAIL" in result.output


@pytest.mark.parametrize("flag", ["-v", "-q"])
def test_cli_policy_test_passes_on_the_repo_bundle(flag: str) -> None:
    result = CliRunner().invoke(app, ["test", "--dir", str(POLICIES), flag])
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.output


def test_cli_policy_eval_json(tmp_path: Path) -> None:
    import json

    case = json.loads((POLICIES.parent / "tests" / "policy_cases" / "safety_small_scale_auto.json").read_text())
    path = tmp_path / "in.json"
    path.write_text(json.dumps(case["input"]))
    result = CliRunner().invoke(app, ["eval", "--input", str(path), "--package", "safety", "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout[result.stdout.index("{") :])
    assert decision["allow"] is True and decision["auto_approve"] is True and decision["engine"] == "regorus"
