"""A simulated estate that runs in step with the wall clock, for the embedded stack and the demo.

`twin.simulator.SimulatorSource` advances a fixed tick per call, which suits replay and
benchmarks; a running controller needs simulated time to *be* the time, so that
snapshot ages, approval deadlines and verification windows mean what they say.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from twin.contract import Snapshot
from twin.scenario import Scenario, load_scenario
from twin.simulator import Simulator

MAX_CATCH_UP_SECONDS = 3600.0
"""After a long pause, catch up at most this much simulated time in one call (then jump).

Why: each simulated second costs CPU in the worker; replaying a night of downtime second by
second would stall the activity past its timeout, and an hour of history is all the agent reads.
"""


def live_scenario(scenario: Scenario, now: datetime) -> Scenario:
    """The scenario re-based to start at `now`, so its snapshots carry real timestamps."""
    return scenario.model_copy(update={"start": now})


class WallClockSimulatorSource:
    """`TwinSource` whose simulator is advanced to the current wall-clock time on every read."""

    def __init__(
        self,
        simulator: Simulator,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        dt: float = 1.0,
    ) -> None:
        self.simulator = simulator
        self._clock = clock
        self._dt = dt
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(
        cls, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> WallClockSimulatorSource:
        """Load a scenario and start it now."""
        return cls(Simulator(live_scenario(load_scenario(path), clock())), clock=clock)

    def advance(self) -> None:
        """Step the simulator up to the wall clock (in steps of at most `dt`)."""
        behind = (self._clock() - self.simulator.now).total_seconds()
        if behind <= 0:
            return
        behind = min(behind, MAX_CATCH_UP_SECONDS)
        steps = max(1, math.ceil(behind / self._dt))
        for _ in range(steps):
            self.simulator.step(behind / steps)

    async def latest(self) -> Snapshot:
        """The estate as it is now."""
        async with self._lock:
            self.advance()
            return self.simulator.snapshot()
