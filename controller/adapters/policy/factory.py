"""Choosing the policy gate from settings: OPA when `opa_url` is set, else regorus in-process."""

from __future__ import annotations

import structlog

from controller.adapters.policy.bundle import check_config, read_bundle
from controller.adapters.policy.gate import RefusingGate
from controller.adapters.policy.opa_gate import OpaPolicyGate
from controller.adapters.policy.regorus_gate import RegorusPolicyGate
from controller.core.errors import PolicyConfigError
from controller.core.settings import Settings
from workflows.policy import PolicyGate

log = structlog.get_logger("twinops.policy")


def make_policy_gate(settings: Settings) -> PolicyGate:
    """The gate the settings ask for. Raises PolicyError when the local bundle cannot be read.

    A bundle whose data.json lacks a setting or mistypes it gives a gate that denies
    every decision with `config_invalid`, naming the setting (fail closed, and said
    where operators look: the approval queue and the audit trail).
    """
    bundle = read_bundle(settings.policies_dir)
    try:
        check_config(bundle)
    except PolicyConfigError as exc:
        log.error("policy.bundle_refused", error=str(exc), settings=exc.settings, bundle_revision=bundle.revision)
        return RefusingGate(exc, bundle_revision=bundle.revision, bundle_sha256=bundle.sha256)
    if settings.opa_url:
        # OPA serves its own copy; the local one only names the revision and hash in decisions.
        return OpaPolicyGate(
            settings.opa_url,
            bundle_revision=bundle.revision,
            bundle_sha256=bundle.sha256,
            timeout_seconds=settings.policy_timeout_seconds,
        )
    return RegorusPolicyGate(
        bundle,
        timeout_seconds=settings.policy_timeout_seconds,
        processes=settings.policy_engine_processes,
    )
