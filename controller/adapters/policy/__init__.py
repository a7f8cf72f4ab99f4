"""The policy gate's adapters: Rego on regorus in local engine processes, or an OPA server; both fail closed.

    gate = make_policy_gate(settings)           # regorus, or OPA when TWINOPS_OPA_URL is set
    decision = await gate.evaluate_safety(SafetyInput(...))

A bundle whose data.json lacks a setting or mistypes it gives a `RefusingGate`
that denies everything naming the setting; a regorus evaluation that outlives the
deadline is killed with its engine process.

The port and the decision types live in `workflows.policy`.
"""

from __future__ import annotations

from controller.adapters.policy.bundle import PolicyBundle, RegoModule, bundle_digest, load_bundle, read_bundle
from controller.adapters.policy.config import PolicyConfig, validate_config
from controller.adapters.policy.factory import make_policy_gate
from controller.adapters.policy.gate import FailClosedGate, RefusingGate
from controller.adapters.policy.opa_gate import OpaPolicyGate, OpaQueryClient
from controller.adapters.policy.rego_tests import (
    RegoTestReport,
    RegoTestResult,
    discover_tests,
    format_report,
    run_bundle_tests,
    run_rego_tests,
)
from controller.adapters.policy.regorus_gate import RegorusPolicyGate

__all__ = [
    "FailClosedGate",
    "OpaPolicyGate",
    "OpaQueryClient",
    "PolicyBundle",
    "PolicyConfig",
    "RefusingGate",
    "RegoModule",
    "RegoTestReport",
    "RegoTestResult",
    "RegorusPolicyGate",
    "bundle_digest",
    "discover_tests",
    "format_report",
    "load_bundle",
    "make_policy_gate",
    "read_bundle",
    "run_bundle_tests",
    "run_rego_tests",
    "validate_config",
]
