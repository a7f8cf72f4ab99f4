"""Watching a twin that is cheap to read, and waking its agent loop when it changed.

The agent loop ticks every `tick_seconds` (15 s by default) as a safety net. A source that can
be read often and cheaply (the embedded simulator; a Prometheus within its scrape interval) is
watched here instead: each read is compared with the last state the loop was woken for, and
when the twin changed in a way the agent cares about, the loop is told to tick now (signal
`wake`, reason `changed`). So twin change -> proposal pending takes a read interval plus one
tick's work, not up to a whole tick.

What counts as a change (`TwinChange`): a node's replicas, or its demand utilization crossing
the target (with a hysteresis band, so noise at the boundary does not wake the loop over and
over), or moving by more than `min_step` since the last wake. Wake-ups are at least `min_gap`
seconds apart. A read that fails is skipped (the loop's own tick reports the source's failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from temporalio.client import Client

from controller.adapters.metrics import TwinopsMetrics
from controller.core.settings import Settings
from twin.contract import Snapshot
from twin.graph import snapshot_flow
from twin.sources import TwinSource, TwinSourceError
from workflows import AgentLoopWorkflow
from workflows.agent_loop import WakeUp

__all__ = ["TwinChange", "TwinWatcher", "describe_change", "loop_waker", "watcher_for", "watching"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TwinChange:
    """When a new snapshot differs enough from the last one the loop saw to wake it."""

    target: float = 0.8
    """The utilization the agent aims under: crossing it either way is a change."""
    hysteresis: float = 0.05
    """Below the target by this much before a node counts as back under it."""
    min_step: float = 0.15
    """A move of demand utilization by this much (absolute) since the last wake is a change."""


def _levels(snapshot: Snapshot) -> dict[str, tuple[int, float]]:
    flow = snapshot_flow(snapshot)
    return {n.id: (n.replicas, flow.utilization(n.id)) for n in snapshot.nodes}


def describe_change(before: Snapshot | None, after: Snapshot, rule: TwinChange) -> str | None:
    """A sentence naming what changed enough to wake the loop, or None when nothing did."""
    now = _levels(after)
    if before is None:
        return None
    then = _levels(before)
    said: list[str] = []
    for node, (replicas, rho) in now.items():
        if node not in then:
            said.append(f"{node} appeared")
            continue
        was_replicas, was_rho = then[node]
        if replicas != was_replicas:
            said.append(f"{node} replicas {was_replicas} -> {replicas}")
        elif _crossed(was_rho, rho, rule) or _moved(was_rho, rho, rule):
            said.append(f"{node} demand {_pct(was_rho)} -> {_pct(rho)} of capacity")
    said += [f"{node} left" for node in then if node not in now]
    return "; ".join(said[:5]) + (f" (+{len(said) - 5} more)" if len(said) > 5 else "") if said else None


def _crossed(was: float, now: float, rule: TwinChange) -> bool:
    over_then, over_now = was >= rule.target, now >= rule.target
    if over_then == over_now:
        return False
    return over_now or now < rule.target - rule.hysteresis  # down only once clearly under


def _moved(was: float, now: float, rule: TwinChange) -> bool:
    if math.isinf(was) or math.isinf(now):
        return math.isinf(was) != math.isinf(now)
    return abs(now - was) >= rule.min_step


def _pct(rho: float) -> str:
    return "no capacity" if math.isinf(rho) else f"{rho:.0%}"


class TwinWatcher:
    """Reads `source` every `interval` seconds and calls `wake` when the twin changed (see `describe_change`)."""

    def __init__(
        self,
        source: TwinSource,
        wake: Callable[[WakeUp], Awaitable[None]],
        *,
        interval: float = 0.5,
        min_gap: float = 2.0,
        rule: TwinChange | None = None,
    ) -> None:
        self.source = source
        self.wake = wake
        self.interval = interval
        self.min_gap = min_gap
        self.rule = rule or TwinChange()
        self.woken = 0
        self._seen: Snapshot | None = None
        self._last_wake = -math.inf

    async def check(self) -> str | None:
        """One read: wake the loop if the twin changed enough; return what changed (None: nothing, or too soon)."""
        try:
            snapshot = await self.source.latest()
            if self._seen is None:
                self._seen = snapshot
                return None
            change = describe_change(self._seen, snapshot, self.rule)
        except TwinSourceError as exc:
            log.debug("twin_watch.read_failed", error=str(exc))
            return None
        except Exception as exc:  # never let one odd read end the watching: the tick stays the safety net
            log.warning("twin_watch.check_failed", error=f"{type(exc).__name__}: {exc}")
            return None
        now = asyncio.get_running_loop().time()
        if change is None or now - self._last_wake < self.min_gap:
            return None
        try:
            await self.wake(WakeUp(reason="changed", detail=change))
        except Exception as exc:  # the loop not running now: try again on the next change
            log.warning("twin_watch.wake_failed", error=str(exc), change=change)
            return None
        self._seen, self._last_wake = snapshot, now
        self.woken += 1
        log.info("twin_watch.woke", change=change)
        return change

    async def run(self) -> None:
        """Watch until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)


@contextlib.asynccontextmanager
async def watching(watcher: TwinWatcher | None) -> AsyncIterator[TwinWatcher | None]:
    """Run `watcher` in the background for the block (nothing when None)."""
    if watcher is None:
        yield None
        return
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def loop_waker(
    client: Client, loop_id: str, metrics: TwinopsMetrics | None = None
) -> Callable[[WakeUp], Awaitable[None]]:
    """`wake` for a TwinWatcher: signal the agent loop `loop_id` (counted in `metrics` when given)."""

    async def wake(w: WakeUp) -> None:
        await client.get_workflow_handle(loop_id).signal(AgentLoopWorkflow.wake, w)
        if metrics is not None:
            metrics.loop_wakeups.labels(reason=w.reason).inc()

    return wake


def watcher_for(
    settings: Settings, source: TwinSource, client: Client, loop_id: str, metrics: TwinopsMetrics | None = None
) -> TwinWatcher | None:
    """The watcher the settings ask for: `twin_watch_seconds`, by default 0.5 s for the in-process simulator
    (reading it costs nothing) and off for the others (their reads cost; set it to watch them)."""
    interval = settings.twin_watch_seconds
    if interval is None:
        interval = 0.5 if settings.twin_source == "simulator" else 0.0
    if interval <= 0:
        return None
    return TwinWatcher(
        source,
        loop_waker(client, loop_id, metrics),
        interval=interval,
        rule=TwinChange(target=settings.target_utilization),
    )
