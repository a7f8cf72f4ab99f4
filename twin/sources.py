"""Where snapshots come from: one port (`TwinSource`) and its file adapter.

The HTTP adapter is `twin.http_source.HttpSource` (kept apart so that code which only
needs the port does not import an HTTP client); the simulator's is
`twin.simulator.SimulatorSource`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.history import read_history
from twinops import TwinopsError


class TwinSourceError(TwinopsError, RuntimeError):
    """No usable snapshot: unreachable source, invalid body, or data too old to act on."""


class StaleSnapshotError(TwinSourceError):
    """The newest snapshot is older than the allowed age; acting on it would be guessing."""


@runtime_checkable
class TwinSource(Protocol):
    """A port that yields the newest snapshot of one twin."""

    async def latest(self) -> Snapshot:
        """The newest valid snapshot; raises TwinSourceError rather than return stale or bad data."""
        ...


MAX_CLOCK_SKEW_SECONDS = 60.0
"""A snapshot observed further ahead of our clock than this is refused: it would otherwise stay "fresh" for
as long as its clock is ahead, and hide every real snapshot after it."""


def check_fresh(snapshot: Snapshot, now: datetime, max_age_seconds: float) -> Snapshot:
    """Return the snapshot if it is at most `max_age_seconds` old at `now` and not from the future (beyond
    `MAX_CLOCK_SKEW_SECONDS`), else raise StaleSnapshotError."""
    age = (now - snapshot.observed_at).total_seconds()
    if age < -MAX_CLOCK_SKEW_SECONDS:
        raise StaleSnapshotError(
            f"twin {snapshot.twin_id!r}: snapshot observed at {snapshot.observed_at.isoformat()} is {-age:.0f}s "
            f"ahead of this clock (at most {MAX_CLOCK_SKEW_SECONDS:.0f}s of skew): a wrong clock, not a fresh twin"
        )
    if age > max_age_seconds:
        raise StaleSnapshotError(
            f"twin {snapshot.twin_id!r}: snapshot observed at {snapshot.observed_at.isoformat()} is "
            f"{age:.0f}s old (max {max_age_seconds:.0f}s)"
        )
    return snapshot


class FileSource:
    """Reads a snapshot file (JSON) or a history (JSON Lines, newest last) on every call.

    Files are replayed data, so freshness is only checked when `max_age_seconds` is given.
    """

    def __init__(self, path: Path, max_age_seconds: float | None = None) -> None:
        self.path = path
        self.max_age_seconds = max_age_seconds

    async def latest(self) -> Snapshot:
        """The snapshot in the file, or the last one of a history."""
        try:
            if self.path.suffix == ".jsonl":
                history = read_history(self.path)
                if not history:
                    raise TwinSourceError(f"{self.path}: history is empty")
                snap = history[-1]
            else:
                snap = parse_snapshot(self.path.read_bytes())
        except OSError as exc:
            raise TwinSourceError(f"{self.path}: {exc.strerror or exc}") from exc
        except SnapshotError as exc:
            raise TwinSourceError(f"{self.path}: {exc}") from exc
        if self.max_age_seconds is not None:
            check_fresh(snap, datetime.now(UTC), self.max_age_seconds)
        return snap
