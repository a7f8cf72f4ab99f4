"""The HTTP twin source: GET a twin.v1 document from a twin API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.sources import TwinSourceError, check_fresh


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
