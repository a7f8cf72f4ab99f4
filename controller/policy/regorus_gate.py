"""The in-process policy gate: the bundle evaluated by regorus on a dedicated thread."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from controller.errors import PolicyEvaluationError
from controller.policy.bundle import PolicyBundle, load_bundle
from controller.policy.engine import build_engine, engine_error, evaluate_json
from controller.policy.gate import FailClosedGate

_Job = tuple[str, str, "Future[Any]"]


def _serve(bundle: PolicyBundle, jobs: queue.SimpleQueue[_Job | None]) -> None:
    # regorus engines are `unsendable`: built, used and freed on one thread only. The
    # engine is a local of this function, so it is freed here when the thread is told to
    # stop. Errors go back as fresh exceptions without traceback or cause, because a
    # traceback would keep this frame (and the engine) alive on the caller's thread.
    broken: tuple[str, str] | None = None
    engine = None
    try:
        engine = build_engine(bundle)
    except PolicyEvaluationError as exc:
        # A bundle that does not compile will not compile on the next call either.
        broken = (exc.code, str(exc))
    while (job := jobs.get()) is not None:
        query, input_json, future = job
        if not future.set_running_or_notify_cancel():
            continue  # the caller gave up (timeout) before we started
        error: PolicyEvaluationError | None = None
        if engine is None:
            error = PolicyEvaluationError(*(broken or ("policy_error", "no engine")))
        else:
            try:
                future.set_result(json.loads(evaluate_json(engine, query, input_json)))
            except PolicyEvaluationError as exc:
                error = PolicyEvaluationError(exc.code, str(exc))
            except BaseException as exc:  # every failure goes back to the caller, which denies
                error = PolicyEvaluationError("policy_error", f"{query}: {type(exc).__name__}: {engine_error(exc)}")
        if error is not None:
            future.set_exception(error)


class _EngineThread:
    """One daemon thread that owns one engine, fed through a queue."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=_serve, args=(bundle, self._jobs), name="twinops-regorus", daemon=True)
        self._thread.start()

    def submit(self, query: str, input_json: str) -> Future[Any]:
        """Queue one evaluation; the future holds the decoded result."""
        future: Future[Any] = Future()
        self._jobs.put((query, input_json, future))
        return future

    def shutdown(self) -> None:
        """Let the thread end (and free its engine) once its queued jobs are done."""
        self._jobs.put(None)


class RegorusPolicyGate(FailClosedGate):
    """Evaluates the bundle in-process with regorus; the embedded default.

    The engine is parsed once, on a dedicated thread, and reused for every decision.
    regorus holds the GIL while it evaluates, so a timeout is noticed when the
    evaluation returns (the late answer is discarded and the gate denies); the
    worker thread is then replaced so later decisions never queue behind a slow one.
    """

    engine_name = "regorus"

    def __init__(self, bundle: PolicyBundle, *, timeout_seconds: float = 2.0) -> None:
        super().__init__(bundle_revision=bundle.revision, bundle_sha256=bundle.sha256, timeout_seconds=timeout_seconds)
        self.bundle = bundle
        self._worker = _EngineThread(bundle)
        self._finalizer = weakref.finalize(self, self._worker.shutdown)

    @classmethod
    def from_dir(cls, policies_dir: Path, *, timeout_seconds: float = 2.0) -> RegorusPolicyGate:
        """Load the bundle folder and build a gate on it."""
        return cls(load_bundle(policies_dir), timeout_seconds=timeout_seconds)

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        return await asyncio.wrap_future(self._worker.submit(query, input.model_dump_json()))

    def _on_timeout(self) -> None:
        self._finalizer()
        self._worker = _EngineThread(self.bundle)
        self._finalizer = weakref.finalize(self, self._worker.shutdown)

    def close(self) -> None:
        """Stop the worker thread."""
        self._finalizer()

    async def aclose(self) -> None:
        """Stop the worker thread."""
        self.close()
