"""The in-process policy gate: the bundle evaluated by regorus on a dedicated thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import regorus
from pydantic import BaseModel

from controller.errors import PolicyEvaluationError
from controller.policy.bundle import PolicyBundle, load_bundle
from controller.policy.engine import build_engine, evaluate_json
from controller.policy.gate import FailClosedGate


class _EngineThread:
    """One worker thread that owns one engine.

    regorus engines are `unsendable` (bound to their creating thread), so the engine is
    built on the worker thread, once, and reused for every evaluation there.
    """

    def __init__(self, bundle: PolicyBundle) -> None:
        self._bundle = bundle
        self._engine: regorus.Engine | None = None
        self._broken: PolicyEvaluationError | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twinops-regorus")

    def _get_engine(self) -> regorus.Engine:
        if self._broken is not None:
            raise self._broken
        if self._engine is None:
            try:
                self._engine = build_engine(self._bundle)
            except PolicyEvaluationError as exc:
                # A bundle that does not compile will not compile on the next call either.
                self._broken = exc
                raise
        return self._engine

    def evaluate(self, query: str, input_json: str) -> Any:
        """Run on the worker thread: evaluate and decode the result."""
        return json.loads(evaluate_json(self._get_engine(), query, input_json))

    def warm_up(self) -> None:
        """Run on the worker thread: build the engine now rather than on the first decision."""
        # A broken bundle is reported by every evaluation; nothing to do here.
        with contextlib.suppress(PolicyEvaluationError):
            self._get_engine()

    def shutdown(self) -> None:
        """Let the thread end once its current job (if any) finishes."""
        self.executor.shutdown(wait=False, cancel_futures=True)


class RegorusPolicyGate(FailClosedGate):
    """Evaluates the bundle in-process with regorus; the embedded default.

    regorus holds the GIL while it evaluates, so a timeout is noticed when the
    evaluation returns (the late answer is discarded and the gate denies); the
    worker thread is then replaced so later decisions never queue behind it.
    """

    engine_name = "regorus"

    def __init__(self, bundle: PolicyBundle, *, timeout_seconds: float = 2.0) -> None:
        super().__init__(bundle_revision=bundle.revision, bundle_sha256=bundle.sha256, timeout_seconds=timeout_seconds)
        self.bundle = bundle
        self._worker = self._start_worker()

    @classmethod
    def from_dir(cls, policies_dir: Path, *, timeout_seconds: float = 2.0) -> RegorusPolicyGate:
        """Load the bundle folder and build a gate on it."""
        return cls(load_bundle(policies_dir), timeout_seconds=timeout_seconds)

    def _start_worker(self) -> _EngineThread:
        worker = _EngineThread(self.bundle)
        worker.executor.submit(worker.warm_up)
        return worker

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        input_json = input.model_dump_json()
        worker = self._worker
        return await asyncio.get_running_loop().run_in_executor(worker.executor, worker.evaluate, query, input_json)

    def _on_timeout(self) -> None:
        old, self._worker = self._worker, self._start_worker()
        old.shutdown()

    def close(self) -> None:
        """Stop the worker thread."""
        self._worker.shutdown()
