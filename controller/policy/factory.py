"""Choosing the policy gate from settings: OPA when `opa_url` is set, else regorus in-process."""

from __future__ import annotations

from controller.policy.bundle import load_bundle
from controller.policy.opa_gate import OpaPolicyGate
from controller.policy.regorus_gate import RegorusPolicyGate
from controller.settings import Settings
from workflows.policy import PolicyGate


def make_policy_gate(settings: Settings) -> PolicyGate:
    """The gate the settings ask for. Raises PolicyError when the local bundle cannot be loaded."""
    if settings.opa_url:
        # OPA serves its own copy; the local one only names the revision and hash in decisions.
        bundle = load_bundle(settings.policies_dir)
        return OpaPolicyGate(
            settings.opa_url,
            bundle_revision=bundle.revision,
            bundle_sha256=bundle.sha256,
            timeout_seconds=settings.policy_timeout_seconds,
        )
    return RegorusPolicyGate(
        load_bundle(settings.policies_dir),
        timeout_seconds=settings.policy_timeout_seconds,
        processes=settings.policy_engine_processes,
    )
