"""Building regorus engines from a bundle, and turning their errors into one readable line."""

from __future__ import annotations

import regorus

from controller.errors import PolicyEvaluationError
from controller.policy.bundle import PolicyBundle

# What regorus's eval_rule_as_json answers for an undefined rule.
UNDEFINED_JSON = '"<undefined>"'

# A Rust panic surfaces as pyo3's PanicException, which derives from BaseException;
# it is an engine failure like any other and must become a deny, not a crash.
_ENGINE_ERRORS = BaseException


def _reraise_interrupts(exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc


def engine_error(exc: BaseException) -> str:
    """The message of a regorus error without the Rust backtrace anyhow appends."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__


def build_engine(bundle: PolicyBundle, *, tests: bool = False) -> regorus.Engine:
    """A fresh engine with the bundle's data and modules (test modules only when asked).

    regorus engines are bound to the thread that created them, so each thread builds its own.
    Raises PolicyEvaluationError("policy_error") naming the module that does not parse.
    """
    engine = regorus.Engine()
    engine.set_rego_v0(False)
    for module in bundle.modules if tests else bundle.policy_modules:
        try:
            engine.add_policy(module.path, module.source)
        except _ENGINE_ERRORS as exc:
            _reraise_interrupts(exc)
            raise PolicyEvaluationError(
                "policy_error", f"policy module {module.path} does not compile: {engine_error(exc)}"
            ) from exc
    try:
        engine.add_data_json(bundle.data_json)
    except _ENGINE_ERRORS as exc:
        _reraise_interrupts(exc)
        raise PolicyEvaluationError("policy_error", f"bundle data rejected: {engine_error(exc)}") from exc
    return engine


def evaluate_json(engine: regorus.Engine, rule: str, input_json: str) -> str:
    """Evaluate `rule` against `input_json` and return the result as JSON text.

    Raises PolicyEvaluationError with code policy_rule_missing, policy_undefined or policy_error.
    """
    try:
        engine.set_input_json(input_json)
        result = engine.eval_rule_as_json(rule)
    except _ENGINE_ERRORS as exc:
        _reraise_interrupts(exc)
        message = engine_error(exc)
        code = "policy_rule_missing" if "not a valid rule path" in message else "policy_error"
        raise PolicyEvaluationError(code, f"{rule}: {message}") from exc
    if result == UNDEFINED_JSON:
        raise PolicyEvaluationError("policy_undefined", f"{rule} is undefined for this input")
    return result
