"""Engine parity: every case in tests/policy_cases/ gives the same answer in-process and on OPA.

The OPA half runs when TWINOPS_OPA_URL names a server that serves policies/
(`opa run --server --bundle policies/`); otherwise it is skipped with that reason.
A third run uses OPA's own Go evaluator embedded through `opa_bindings`
(PyPI `opa-golib-python-bindings`, Python >= 3.14) when it is importable, so the
bundle is held to OPA's semantics even where no OPA server is at hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.policy import FailClosedGate, OpaPolicyGate, RegorusPolicyGate, load_bundle
from workflows.policy import ApprovalDecision, SafetyDecision

from .conftest import CASES, POLICIES

CASE_FILES = sorted(CASES.glob("*.json"))
OPA_URL = os.environ.get("TWINOPS_OPA_URL")


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def _observed(decision: SafetyDecision | ApprovalDecision) -> dict[str, Any]:
    if isinstance(decision, SafetyDecision):
        return {
            "allow": decision.allow,
            "deny": sorted(r.code for r in decision.deny),
            "risk": decision.risk,
            "required_approvals": decision.required_approvals,
            "auto_approve": decision.auto_approve,
            "approver_groups": decision.approver_groups,
        }
    return {
        "counts": decision.counts,
        "quorum_met": decision.quorum_met,
        "approvals_counted": decision.approvals_counted,
        "still_needed": decision.still_needed,
        "reasons": sorted(r.code for r in decision.reasons),
        "pending": sorted(r.code for r in decision.pending),
    }


def test_there_are_at_least_thirty_cases_covering_both_packages() -> None:
    packages = [_load(p)["package"] for p in CASE_FILES]
    assert len(packages) >= 30
    assert {"safety", "approval"} <= set(packages)


@pytest.fixture(scope="module")
async def regorus_gate() -> AsyncIterator[RegorusPolicyGate]:
    gate = RegorusPolicyGate.from_dir(POLICIES)
    yield gate
    gate.close()


@pytest.fixture(scope="module")
async def opa_gate() -> AsyncIterator[OpaPolicyGate]:
    if not OPA_URL:
        pytest.skip("TWINOPS_OPA_URL is not set: start `opa run --server --bundle policies/` and export it to run")
    bundle = load_bundle(POLICIES)
    gate = OpaPolicyGate(OPA_URL, bundle_revision=bundle.revision, bundle_sha256=bundle.sha256)
    yield gate
    await gate.aclose()


async def _check(gate: FailClosedGate, path: Path) -> None:
    case = _load(path)
    decision = await gate.evaluate_document(case["package"], case["input"])
    assert _observed(decision) == case["expected"], f"{case['name']}: {case['description']}"
    assert decision.bundle_sha256 == load_bundle(POLICIES).sha256


@pytest.fixture(scope="module")
def embedded_opa() -> Any:
    bindings = pytest.importorskip("opa_bindings", reason="opa-golib-python-bindings (Python >= 3.14) not installed")
    engine = bindings.OpaEngine()
    bundle = load_bundle(POLICIES)
    for module in bundle.modules:
        engine.add_policy(module.path, module.source)
    engine.add_data(bundle.data)
    yield engine
    engine.close()


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case_on_embedded_opa(embedded_opa: Any, path: Path) -> None:
    case = _load(path)
    raw = embedded_opa.eval_document(f"twinops.{case['package']}.decision", case["input"])
    model = SafetyDecision if case["package"] == "safety" else ApprovalDecision
    assert _observed(model.model_validate(raw)) == case["expected"], case["name"]


def test_rego_tests_pass_on_embedded_opa(embedded_opa: Any) -> None:
    from controller.adapters.policy import discover_tests

    failed = [name for _, name in discover_tests(load_bundle(POLICIES))
              if embedded_opa.eval_document(name.removeprefix("data."), None) is not True]  # fmt: skip
    assert failed == []


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
async def test_case_in_process(regorus_gate: RegorusPolicyGate, path: Path) -> None:
    await _check(regorus_gate, path)


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
async def test_case_on_opa(opa_gate: OpaPolicyGate, path: Path) -> None:
    await _check(opa_gate, path)


async def test_concurrent_decisions_do_not_mix_inputs(regorus_gate: RegorusPolicyGate) -> None:
    import asyncio

    cases = [_load(p) for p in CASE_FILES]
    decisions = await asyncio.gather(*(regorus_gate.evaluate_document(c["package"], c["input"]) for c in cases))
    assert [_observed(d) for d in decisions] == [c["expected"] for c in cases]
