"""The policy gate's adapters: Rego in-process on regorus, or an OPA server; both fail closed.

    gate = make_policy_gate(settings)           # regorus, or OPA when TWINOPS_OPA_URL is set
    decision = await gate.evaluate_safety(SafetyInput(...))

The port and the decision types live in `workflows.policy`.
"""

from __future__ import annotations

from controller.policy.bundle import PolicyBundle, RegoModule, bundle_digest, load_bundle
from controller.policy.factory import make_policy_gate
from controller.policy.gate import FailClosedGate
from controller.policy.opa_gate import OpaPolicyGate, OpaQueryClient
from controller.policy.rego_tests import (
    RegoTestReport,
    RegoTestResult,
    discover_tests,
    format_report,
    run_bundle_tests,
    run_rego_tests,
)
from controller.policy.regorus_gate import RegorusPolicyGate

__all__ = [
    "FailClosedGate",
    "OpaPolicyGate",
    "OpaQueryClient",
    "PolicyBundle",
    "RegoModule",
    "RegoTestReport",
    "RegoTestResult",
    "RegorusPolicyGate",
    "bundle_digest",
    "discover_tests",
    "format_report",
    "load_bundle",
    "make_policy_gate",
    "run_bundle_tests",
    "run_rego_tests",
]
