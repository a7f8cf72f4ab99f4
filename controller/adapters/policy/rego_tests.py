"""Run every `test_*` rule of a bundle with regorus and report like `opa test`."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from controller.adapters.policy.bundle import PolicyBundle, load_bundle
from controller.adapters.policy.engine import UNDEFINED_JSON, build_engine, engine_error
from controller.core.errors import PolicyError, PolicyEvaluationError

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
# Test rules start at column 0, as `opa fmt` writes them.
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoTestResult:
    """One test rule's outcome: PASS (true), FAIL (false or undefined) or ERROR (engine error)."""

    name: str
    file: str
    status: str
    seconds: float
    error: str = ""

    @property
    def passed(self) -> bool:
        """True when the rule evaluated to true."""
        return self.status == "PASS"


@dataclass(frozen=True, slots=True)
class RegoTestReport:
    """All results of one run, in file then source order."""

    results: tuple[RegoTestResult, ...]

    @property
    def passed(self) -> int:
        """How many tests passed."""
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        """How many tests failed or errored."""
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        """True when there were tests and all of them passed."""
        return bool(self.results) and self.failed == 0


def discover_tests(bundle: PolicyBundle) -> list[tuple[str, str]]:
    """(file, data.<package>.<rule>) for every test rule, each name once, in source order."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for module in bundle.modules:
        package = _PACKAGE.search(module.source)
        if package is None:
            continue
        for rule in _TEST_RULE.findall(module.source):
            name = f"data.{package.group(1)}.{rule}"
            if name not in seen:
                seen.add(name)
                found.append((module.path, name))
    return found


def run_bundle_tests(bundle: PolicyBundle) -> RegoTestReport:
    """Evaluate every test rule of a loaded bundle on one engine."""
    tests = discover_tests(bundle)
    try:
        engine = build_engine(bundle, tests=True)
    except PolicyEvaluationError as exc:
        return RegoTestReport(
            (RegoTestResult(name="(bundle)", file=str(bundle.root), status="ERROR", seconds=0.0, error=str(exc)),)
        )
    results: list[RegoTestResult] = []
    for file, name in tests:
        started = time.perf_counter()
        try:
            value = engine.eval_rule_as_json(name)
            status, error = (
                ("PASS", "") if value == "true" else ("FAIL", "" if value == UNDEFINED_JSON else f"= {value}")
            )
        except Exception as exc:
            status, error = "ERROR", engine_error(exc)
        results.append(RegoTestResult(name, file, status, time.perf_counter() - started, error))
    return RegoTestReport(tuple(results))


def run_rego_tests(policies_dir: Path) -> RegoTestReport:
    """Load the bundle folder and run its tests; a bundle that does not load is one ERROR."""
    try:
        bundle = load_bundle(policies_dir)
    except PolicyError as exc:
        return RegoTestReport(
            (RegoTestResult(name="(bundle)", file=str(policies_dir), status="ERROR", seconds=0.0, error=str(exc)),)
        )
    return run_bundle_tests(bundle)


def format_report(report: RegoTestReport, *, verbose: bool = True) -> str:
    """Text in the shape of `opa test -v`: one line per test grouped by file, then the counts."""
    lines: list[str] = []
    current = None
    for r in report.results:
        if not verbose and r.passed:
            continue
        if r.file != current:
            if current is not None:
                lines.append("")
            lines.append(f"{r.file}:")
            current = r.file
        detail = f" ({r.seconds * 1000:.3f}ms)" if r.status != "ERROR" else ""
        lines.append(f"{r.name}: {r.status}{detail}" + (f"\n  {r.error}" if r.error else ""))
    lines.append("-" * 80)
    if report.passed:
        lines.append(f"PASS: {report.passed}/{len(report.results)}")
    if report.failed:
        lines.append(f"FAIL: {report.failed}/{len(report.results)}")
    if not report.results:
        lines.append("no tests found")
    return "\n".join(lines)
