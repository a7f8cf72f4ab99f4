"""The in-process policy gate: the bundle evaluated by regorus, in a small pool of engine processes."""

from __future__ import annotations

import asyncio
import json
import weakref
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from controller.adapters.policy.bundle import PolicyBundle, load_bundle
from controller.adapters.policy.engine_pool import EnginePool
from controller.adapters.policy.gate import FailClosedGate


class RegorusPolicyGate(FailClosedGate):
    """Evaluates the bundle with regorus on this machine; the embedded default.

    Each engine process parses the bundle once and serves decisions one at a time.
    The deadline is real: when it passes, the process still evaluating is killed
    (regorus cannot be interrupted otherwise) and replaced, the gate denies with
    `policy_timeout`, and the asyncio loop was never blocked in the meantime.
    """

    engine_name = "regorus"

    def __init__(self, bundle: PolicyBundle, *, timeout_seconds: float = 2.0, processes: int = 2) -> None:
        super().__init__(bundle_revision=bundle.revision, bundle_sha256=bundle.sha256, timeout_seconds=timeout_seconds)
        self.bundle = bundle
        self._pool = EnginePool(bundle, size=processes)
        self._finalizer = weakref.finalize(self, self._pool.close)

    @classmethod
    def from_dir(cls, policies_dir: Path, *, timeout_seconds: float = 2.0, processes: int = 2) -> RegorusPolicyGate:
        """Load the bundle folder and build a gate on it."""
        return cls(load_bundle(policies_dir), timeout_seconds=timeout_seconds, processes=processes)

    @property
    def engine_pids(self) -> list[int]:
        """Process ids of the engine processes now running."""
        return self._pool.pids

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        ticket = self._pool.submit(query, input.model_dump_json())
        try:
            text = await asyncio.wrap_future(ticket.future)
        except asyncio.CancelledError:
            # The gate's deadline (or the caller) gave up: kill the process still evaluating.
            ticket.abandon()
            raise
        return json.loads(text)

    def close(self) -> None:
        """Kill the engine processes."""
        self._finalizer()

    async def aclose(self) -> None:
        """Kill the engine processes."""
        self.close()
