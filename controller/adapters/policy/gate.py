"""The fail-closed half every policy gate shares: validate, evaluate with a deadline, check the answer.

Adapters implement `_evaluate(query, input)` and may raise anything; this base
turns every failure (invalid input, engine error, missing or undefined rule,
timeout, malformed or self-contradicting decision, refused bundle) into a deny
with a reason naming the failure, and logs it.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from controller.adapters.policy.consistency import contradictions
from controller.core.errors import PolicyConfigError, PolicyEvaluationError
from workflows.policy import (
    APPROVAL_QUERY,
    SAFETY_QUERY,
    ApprovalDecision,
    ApprovalInput,
    SafetyDecision,
    SafetyInput,
    deny_decision,
    refuse_approval,
)

log = structlog.get_logger("twinops.policy")

Package = Literal["safety", "approval"]
_D = TypeVar("_D", SafetyDecision, ApprovalDecision)


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = json.loads(exc.json(include_url=False, include_context=False, include_input=False))
    return errors


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    return f"{exc.error_count()} validation error(s), first at {where}: {first['msg']}"


class DecisionObserver(Protocol):
    """Told of every decision a gate returns (e.g. `controller.adapters.metrics.TwinopsMetrics`)."""

    def decided(self, package: str, engine: str, seconds: float, codes: Sequence[str], *, failure: str | None) -> None:
        """A `package` ("safety"/"approval") decision took `seconds`; `codes` are the reasons against it,
        `failure` the code when the gate denied because the engine gave no usable answer."""


class FailClosedGate(ABC):
    """Base of the policy gates: any failure is a deny, stamped with the bundle revision and hash."""

    engine_name: str = "unknown"
    _observers: tuple[DecisionObserver, ...] = ()

    def __init__(self, *, bundle_revision: str, bundle_sha256: str, timeout_seconds: float) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"policy timeout must be positive, got {timeout_seconds}")
        self.bundle_revision = bundle_revision
        self.bundle_sha256 = bundle_sha256
        self.timeout_seconds = timeout_seconds

    @abstractmethod
    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        """Return the decoded value of `query` for `input`; raise on any failure."""

    async def aclose(self) -> None:  # noqa: B027 - an optional hook; gates without resources need nothing
        """Release the gate's resources (threads, HTTP sessions)."""

    @contextmanager
    def observed_by(self, observer: DecisionObserver) -> Iterator[None]:
        """Tell `observer` of every decision while the block runs (the worker's metrics)."""
        self._observers = (*self._observers, observer)
        try:
            yield
        finally:
            self._observers = tuple(o for o in self._observers if o is not observer)

    async def evaluate_safety(self, input: SafetyInput) -> SafetyDecision:
        """Decide on a proposal; never raises, fails closed."""
        return await self._decide(SAFETY_QUERY, SafetyInput, input, SafetyDecision, deny_decision)

    async def evaluate_approval(self, input: ApprovalInput) -> ApprovalDecision:
        """Decide on an approval attempt; never raises, fails closed."""
        return await self._decide(APPROVAL_QUERY, ApprovalInput, input, ApprovalDecision, refuse_approval)

    async def evaluate_document(
        self, package: Package, document: Mapping[str, Any]
    ) -> SafetyDecision | ApprovalDecision:
        """Validate a raw JSON document as the package's input model, then decide (used by the CLI)."""
        if package == "safety":
            return await self._decide(SAFETY_QUERY, SafetyInput, document, SafetyDecision, deny_decision)
        return await self._decide(APPROVAL_QUERY, ApprovalInput, document, ApprovalDecision, refuse_approval)

    async def _decide(
        self,
        query: str,
        input_model: type[BaseModel],
        raw_input: object,
        decision_model: type[_D],
        refuse: Callable[..., _D],
    ) -> _D:
        started = time.monotonic()
        failures: list[str] = []
        decision = await self._decide_closed(query, input_model, raw_input, decision_model, refuse, failures)
        if self._observers:
            self._observe(query, time.monotonic() - started, decision, failures[0] if failures else None)
        return decision

    def _observe(self, query: str, seconds: float, decision: Any, failure: str | None) -> None:
        package = "safety" if query == SAFETY_QUERY else "approval"
        reasons = decision.deny if isinstance(decision, SafetyDecision) else decision.reasons
        codes = [reason.code for reason in reasons]
        for observer in self._observers:
            try:
                observer.decided(package, self.engine_name, seconds, codes, failure=failure)
            except Exception as exc:  # the decision stands; an observer's failure must not change it
                log.warning("policy.observer_failed", error=str(exc))

    async def _decide_closed(
        self,
        query: str,
        input_model: type[BaseModel],
        raw_input: object,
        decision_model: type[_D],
        refuse: Callable[..., _D],
        failures: list[str],
    ) -> _D:
        """The decision; appends to `failures` the code of an engine failure the deny stands for."""
        stamp = {
            "bundle_revision": self.bundle_revision,
            "bundle_sha256": self.bundle_sha256,
            "engine": self.engine_name,
        }

        def fail(code: str, msg: str, *, engine_failed: bool = True, **details: Any) -> _D:
            if engine_failed:
                failures.append(code)
            log.warning(
                "policy.fail_closed", query=query, code=code, error=msg, engine=self.engine_name,
                bundle_revision=self.bundle_revision,
            )  # fmt: skip
            return refuse(code, msg, details=details, **stamp)

        # Models are validated when built; raw documents (CLI, tests, foreign callers) are validated here.
        if isinstance(raw_input, input_model):
            model = raw_input
        else:
            try:
                model = input_model.model_validate(raw_input)
            except ValidationError as exc:
                return fail(
                    "invalid_input",
                    f"{input_model.__name__}: {_summary(exc)}",
                    engine_failed=False,  # the caller's fault: the engine was never asked
                    errors=_validation_details(exc),
                )

        started = time.monotonic()
        try:
            raw = await asyncio.wait_for(self._evaluate(query, model), self.timeout_seconds)
        except TimeoutError:
            return fail("policy_timeout", f"{query}: no decision within {self.timeout_seconds:g}s")
        except PolicyConfigError as exc:
            return fail("config_invalid", str(exc), setting=exc.settings[0], settings=exc.settings)
        except PolicyEvaluationError as exc:
            return fail(exc.code, str(exc))
        except Exception as exc:
            return fail("policy_error", f"{query}: {type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        # A late answer (the loop itself was held up) is still too late.
        if elapsed > self.timeout_seconds:
            return fail("policy_timeout", f"{query}: decision took {elapsed:.3f}s, limit {self.timeout_seconds:g}s")

        if not isinstance(raw, dict):
            return fail("policy_malformed_decision", f"{query}: expected an object, got {type(raw).__name__}")
        try:
            decision = decision_model.model_validate({**raw, **stamp})
        except ValidationError as exc:
            return fail("policy_malformed_decision", f"{query}: {_summary(exc)}", errors=_validation_details(exc))
        if problems := contradictions(decision):
            return fail(
                "policy_malformed_decision",
                f"{query}: the decision contradicts itself: {'; '.join(problems)}",
                contradictions=problems,
            )
        log.debug("policy.decision", query=query, engine=self.engine_name, seconds=round(elapsed, 6))
        return decision


class RefusingGate(FailClosedGate):
    """The gate over a bundle the loader refused: every decision denies, naming the setting at fault."""

    engine_name = "refused"

    def __init__(self, error: PolicyConfigError, *, bundle_revision: str, bundle_sha256: str) -> None:
        super().__init__(bundle_revision=bundle_revision, bundle_sha256=bundle_sha256, timeout_seconds=1.0)
        self.error = error

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        raise self.error
