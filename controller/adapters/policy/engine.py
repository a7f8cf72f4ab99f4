"""Building regorus engines from a bundle in this process, and turning their errors into one readable line.

Decisions do not use these (they run in `engine_pool`'s child processes, where a
deadline can be enforced); the Rego test runner and the benchmark do.
"""

from __future__ import annotations

import regorus

from controller.adapters.policy.bundle import PolicyBundle
from controller.adapters.policy.engine_process import UNDEFINED_JSON, EngineError, engine_error, evaluate, new_engine
from controller.core.errors import PolicyEvaluationError

__all__ = ["UNDEFINED_JSON", "build_engine", "engine_error", "evaluate_json"]


def build_engine(bundle: PolicyBundle, *, tests: bool = False) -> regorus.Engine:
    """A fresh engine with the bundle's data and modules (test modules only when asked).

    regorus engines are bound to the thread that created them, so each thread builds its own.
    Raises PolicyEvaluationError("policy_error") naming the module that does not parse.
    """
    modules = bundle.modules if tests else bundle.policy_modules
    try:
        return new_engine([(m.path, m.source) for m in modules], bundle.data_json)
    except EngineError as exc:
        raise PolicyEvaluationError(exc.code, str(exc)) from exc


def evaluate_json(engine: regorus.Engine, rule: str, input_json: str) -> str:
    """Evaluate `rule` against `input_json` and return the result as JSON text.

    Raises PolicyEvaluationError with code policy_rule_missing, policy_undefined or policy_error.
    """
    try:
        return evaluate(engine, rule, input_json)
    except EngineError as exc:
        raise PolicyEvaluationError(exc.code, str(exc)) from exc
