"""deploy/prometheus/rules.yaml: promtool checks it and runs its unit tests; it reads only metrics that exist."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.controller.test_grafana_dashboard import (
    PROMETHEUS_BUILTINS,
    RULES,
    exposed_metric_names,
    promql_metric_names,
    recording_rules,
)
from tests.promstack import requires_promtool

RULES_TEST = RULES.parent / "rules_test.yaml"


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool is not None
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@requires_promtool
def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@requires_promtool
def test_the_rules_pass_their_unit_tests() -> None:
    done = _promtool("test", "rules", RULES_TEST)
    assert done.returncode == 0, done.stdout + done.stderr


@requires_promtool
def test_the_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests bite: a high-risk SLA of 50 min instead of 15 leaves the expected alert unfired."""
    text = RULES.read_text()
    assert "vector(900)" in text
    (tmp_path / "rules.yaml").write_text(text.replace("vector(900)", "vector(3000)"))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yaml")
    done = _promtool("test", "rules", tmp_path / "rules_test.yaml")
    assert done.returncode != 0
    assert "TwinopsApprovalQueueOverSLA" in done.stdout + done.stderr


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    alerts = {str(rule["alert"]) for rule in _rules() if "alert" in rule}
    assert {
        "TwinopsApprovalQueueOverSLA",
        "TwinopsCompensationFailed",
        "TwinopsSnapshotStale",
        "TwinopsSnapshotsAbsent",
        "TwinopsAuditHeadUnsigned",
        "TwinopsPolicyEngineFailing",
    } <= alerts
    for rule in _rules():
        if "alert" in rule:
            labels, annotations = rule["labels"], rule["annotations"]
            assert isinstance(labels, dict) and labels["severity"] in ("warning", "critical"), rule["alert"]
            assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"]


def test_every_rule_reads_only_metrics_twinops_exposes(tmp_path: Path) -> None:
    known = exposed_metric_names(tmp_path) | recording_rules() | PROMETHEUS_BUILTINS
    unknown = {
        (str(rule.get("alert") or rule.get("record")), name)
        for rule in _rules()
        for name in promql_metric_names(str(rule["expr"]))
        if name not in known
    }
    assert not unknown, f"rules read metrics that do not exist: {sorted(unknown)}"
