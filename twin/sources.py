"""Where snapshots come from: one port (`TwinSource`) and its file and HTTP adapters.

The simulator's adapter is `twin.simulator.SimulatorSource`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.history import read_history


class TwinSourceError(RuntimeError):
    """No usable snapshot: unreachable source, invalid body, or data too old to act on."""


class StaleSnapshotError(TwinSourceError):
    """The newest snapshot is older than the allowed age; acting on it would be guessing."""


@runtime_checkable
class TwinSource(Protocol):
    """A port that yields the newest snapshot of one twin."""

    async def latest(self) -> Snapshot:
        """The newest valid snapshot; raises TwinSourceError rather than return stale or bad data."""
        ...


def check_fresh(snapshot: Snapshot, now: datetime, max_age_seconds: float) -> Snapshot:
    """Return the snapshot if it is at most `max_age_seconds` old at `now`, else raise StaleSnapshotError."""
    age = (now - snapshot.observed_at).total_seconds()
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
                snap = parse_snapshot(self.path.read_text())
        except OSError as exc:
            raise TwinSourceError(f"{self.path}: {exc.strerror or exc}") from exc
        except SnapshotError as exc:
            raise TwinSourceError(f"{self.path}: {exc}") from exc
        if self.max_age_seconds is not None:
            check_fresh(snap, datetime.now(UTC), self.max_age_seconds)
        return snap


class HttpSource:
    """GETs a twin.v1 document from a twin API, with timeouts and retries with exponential backoff."""

    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float,
        timeout_seconds: float = 5.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.max_age_seconds = max_age_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)

    async def latest(self) -> Snapshot:
        """Fetch, validate and freshness-check one snapshot; transport errors and 5xx are retried."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = await self._client.get(self.url, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code >= 500:
                last = TwinSourceError(f"{self.url}: HTTP {response.status_code}")
                continue
            if response.status_code != 200:
                raise TwinSourceError(f"{self.url}: HTTP {response.status_code}")
            try:
                snap = parse_snapshot(response.content)
            except SnapshotError as exc:
                raise TwinSourceError(f"{self.url}: {exc}") from exc
            return check_fresh(snap, datetime.now(UTC), self.max_age_seconds)
        raise TwinSourceError(f"{self.url}: unreachable after {self.retries + 1} attempts: {last}") from last

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
