"""Histories (JSON Lines) and the file and HTTP snapshot sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from twin.contract import Snapshot, parse_snapshot
from twin.history import HistoryError, read_history, write_history
from twin.http_source import HttpSource
from twin.sources import FileSource, StaleSnapshotError, TwinSource, TwinSourceError


def _at(doc: dict[str, Any], when: datetime, twin_id: str = "shop") -> Snapshot:
    return parse_snapshot({**doc, "observed_at": when.isoformat(), "twin_id": twin_id})


T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def test_history_round_trip(tmp_path: Path, doc: dict[str, Any]) -> None:
    snaps = [_at(doc, T0 + timedelta(seconds=15 * i)) for i in range(4)]
    path = tmp_path / "h.jsonl"
    assert write_history(path, snaps) == 4
    assert read_history(path) == snaps


def test_history_rejects_out_of_order(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "h.jsonl"
    write_history(path, [_at(doc, T0 + timedelta(seconds=30)), _at(doc, T0)])
    with pytest.raises(HistoryError, match=r"line 2: observed_at .* \(out of order\)"):
        read_history(path)


def test_history_rejects_mixed_twins(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "h.jsonl"
    write_history(path, [_at(doc, T0), _at(doc, T0 + timedelta(seconds=1), twin_id="bank")])
    with pytest.raises(HistoryError, match="line 2: twin_id 'bank' differs from 'shop'"):
        read_history(path)


def test_history_names_the_invalid_line(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "h.jsonl"
    bad = {**doc, "observed_at": T0.isoformat(), "nodes": [{**doc["nodes"][0], "replicas": -1}]}
    path.write_text(_at(doc, T0 - timedelta(seconds=1)).to_json() + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(HistoryError, match=r"line 2: .*node 'gateway': replicas"):
        read_history(path)


async def test_file_source_reads_snapshot_and_history(tmp_path: Path, doc: dict[str, Any]) -> None:
    single = tmp_path / "s.json"
    single.write_text(_at(doc, T0).to_json())
    source: TwinSource = FileSource(single)
    assert (await source.latest()).observed_at == T0
    hist = tmp_path / "h.jsonl"
    write_history(hist, [_at(doc, T0), _at(doc, T0 + timedelta(seconds=5))])
    assert (await FileSource(hist).latest()).observed_at == T0 + timedelta(seconds=5)


async def test_file_source_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TwinSourceError, match=r"missing.json"):
        await FileSource(tmp_path / "missing.json").latest()
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "twin.v1"}')
    with pytest.raises(TwinSourceError, match=r"bad.json: invalid twin snapshot: twin_id"):
        await FileSource(bad).latest()


async def test_file_source_refuses_stale_when_asked(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "s.json"
    path.write_text(_at(doc, datetime.now(UTC) - timedelta(hours=1)).to_json())
    with pytest.raises(StaleSnapshotError, match="old"):
        await FileSource(path, max_age_seconds=60).latest()


def _transport(responses: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler), seen


async def test_http_source_retries_then_validates(doc: dict[str, Any]) -> None:
    fresh = _at(doc, datetime.now(UTC))
    transport, seen = _transport(
        [httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200, content=fresh.to_json())]
    )
    source = HttpSource("http://twin.test/v1/snapshot", max_age_seconds=60, backoff_seconds=0, transport=transport)
    assert await source.latest() == fresh
    assert len(seen) == 3
    await source.aclose()


async def test_http_source_gives_up_naming_the_url() -> None:
    transport, _ = _transport([httpx.ConnectError("refused")] * 3)
    source = HttpSource("http://twin.test/x", max_age_seconds=60, retries=2, backoff_seconds=0, transport=transport)
    with pytest.raises(TwinSourceError, match=r"http://twin.test/x: unreachable after 3 attempts"):
        await source.latest()


async def test_http_source_rejects_invalid_body_and_stale_data(doc: dict[str, Any]) -> None:
    stale = _at(doc, datetime.now(UTC) - timedelta(minutes=10))
    bad = {**doc, "edges": [{"source": "gateway", "target": "ghost", "ratio": 1.0}]}
    transport, _ = _transport(
        [httpx.Response(200, content=json.dumps(bad)), httpx.Response(200, content=stale.to_json())]
    )
    source = HttpSource("http://twin.test/s", max_age_seconds=120, backoff_seconds=0, transport=transport)
    with pytest.raises(TwinSourceError, match="unknown node 'ghost'"):
        await source.latest()
    with pytest.raises(StaleSnapshotError, match="max 120s"):
        await source.latest()


async def test_http_source_does_not_retry_client_errors() -> None:
    transport, seen = _transport([httpx.Response(404)])
    source = HttpSource("http://twin.test/s", max_age_seconds=60, backoff_seconds=0, transport=transport)
    with pytest.raises(TwinSourceError, match="HTTP 404"):
        await source.latest()
    assert len(seen) == 1
