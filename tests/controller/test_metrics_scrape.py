"""A real Prometheus scrapes the API's /metrics, reads the approval queue as the database has it, and the
alerting rules of deploy/prometheus/rules.yaml see it (the queue SLA alert turns pending for the high risk)."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.adapters.temporal_server import connect
from controller.api.server import running_api
from controller.core.settings import Settings
from tests.controller.test_grafana_dashboard import RULES
from tests.promstack import prometheus_server, requires_prometheus, wait_for_query
from workflows.ports import InboxEntry, InboxStatus

pytestmark = requires_prometheus


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pending(n: int, risk: str, age: timedelta) -> InboxEntry:
    return InboxEntry(
        proposal_id=f"p-{risk}-{n}",
        workflow_id=f"remediation-p-{risk}-{n}",
        twin_id="shop",
        status=InboxStatus.PENDING,
        risk=risk,
        target=f"node-{n}",
        summary="scale",
        created_at=datetime.now(UTC) - age,
    )


def _value(result: list[dict[str, object]]) -> float | None:
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


async def test_prometheus_scraping_the_api_reads_the_queue_depth_by_risk(tmp_path: Path) -> None:
    # Temporal is not needed to serve /metrics: a lazy client to a closed port.
    settings = Settings(home=tmp_path / "home", temporal_address=f"127.0.0.1:{_closed_port()}")
    client = await connect(settings, lazy=True)
    async with running_api(settings, client, host="127.0.0.1", port=0) as api:
        inbox = api.context.inbox
        for n in range(3):
            inbox.upsert_sync(_pending(n, "high", timedelta(minutes=20 + n)))
        inbox.upsert_sync(_pending(0, "low", timedelta(minutes=1)))
        target = f"127.0.0.1:{api.port}"
        with prometheus_server(tmp_path / "prom", targets=[target], scrape_interval="1s", rule_files=[RULES]) as prom:
            # The queries block; the API answers the scrapes on this event loop meanwhile.
            high = await asyncio.to_thread(
                wait_for_query, prom, 'twinops_queue_depth{risk="high"}', lambda r: _value(r) == 3
            )
            assert high[0]["metric"]["job"] == "twinops"
            low = await asyncio.to_thread(prom.query, 'twinops_queue_depth{risk="low"}')
            assert _value(low) == 1
            oldest = await asyncio.to_thread(prom.query, 'twinops_queue_oldest_pending_age_seconds{risk="high"}')
            age = _value(oldest)
            assert age is not None and 22 * 60 <= age < 30 * 60

            # The rules see it: the high-risk proposals are past their 15 min SLA (pending: `for: 1m` not yet over).
            alerts = await asyncio.to_thread(
                wait_for_query, prom, 'ALERTS{alertname="TwinopsApprovalQueueOverSLA"}', lambda r: bool(r)
            )
            assert [(a["metric"]["risk"], a["metric"]["alertstate"]) for a in alerts] == [("high", "pending")]

            # A decision closes one: the next scrape says so (the truth of the database, not a counter).
            closed = _pending(2, "high", timedelta(minutes=22)).model_copy(update={"status": InboxStatus.REJECTED})
            inbox.upsert_sync(closed)
            await asyncio.to_thread(wait_for_query, prom, 'twinops_queue_depth{risk="high"}', lambda r: _value(r) == 2)
            up = await asyncio.to_thread(prom.query, "twinops_database_up")
            assert _value(up) == 1
