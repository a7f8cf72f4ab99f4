"""The playbook runs endpoints: the list newest first with counts, one run's report, problem details for unknown ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.core.settings import Settings
from tests.controller.api.conftest import PROBLEM_JSON
from tests.controller.playbook_run_factory import full_report, small_report
from workflows.playbook_contracts import PlaybookRunReport

pytestmark = pytest.mark.integration

TYPES = "https://twinops.dev/problems/"
NEWEST = full_report("playbook-run-nightly-20261121T020000Z")
OLDER = small_report("playbook-run-nightly-20261120T020000Z", ended_minutes=-24 * 60)
WEEKLY = small_report("playbook-run-weekly-20261121T010000Z", playbook="weekly", ended_minutes=-30)


@dataclass
class Served:
    """The app over fresh stores holding three runs; vera is a viewer."""

    ctx: ApiContext
    http: httpx.AsyncClient
    token: str

    async def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {token or self.token}"}, **kwargs)


@pytest_asyncio.fixture
async def served(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(home=tmp_path)
    ctx = await ApiContext.open(settings, client=temporal.client)
    token = ctx.identities.add_user("vera", "viewer", "edge")
    for report in (OLDER, NEWEST, WEEKLY):
        await ctx.playbook_runs().save(report)
    app = create_app(settings, context=ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield Served(ctx, http, token)
    await ctx.close()


async def test_a_viewer_lists_the_runs_newest_first_with_their_counts(served: Served) -> None:
    answer = await served.get("/api/v1/playbook-runs")
    assert answer.status_code == 200, answer.text
    runs = answer.json()["runs"]
    assert [r["run_id"] for r in runs] == [NEWEST.run_id, WEEKLY.run_id, OLDER.run_id]
    first = runs[0]
    assert (first["playbook"], first["version"], first["status"], first["trigger"]) == (
        "nightly",
        3,
        "partial",
        "manual",
    )
    assert first["counts"]["ran"] == 1 and first["counts"]["denied"] == 1 and sum(first["counts"].values()) == 12
    assert first["skipped"] == 1 and first["summary"] == NEWEST.summary()
    assert first["started_at"] == "2026-11-21T02:00:00Z" and first["ended_at"] == "2026-11-21T02:12:00Z"


async def test_the_list_filters_by_playbook_and_limits(served: Served) -> None:
    weekly = await served.get("/api/v1/playbook-runs", params={"playbook": "weekly"})
    assert [r["run_id"] for r in weekly.json()["runs"]] == [WEEKLY.run_id]
    one = await served.get("/api/v1/playbook-runs", params={"limit": 1})
    assert [r["run_id"] for r in one.json()["runs"]] == [NEWEST.run_id]
    none = await served.get("/api/v1/playbook-runs", params={"playbook": "monthly"})
    assert none.status_code == 200 and none.json() == {"runs": []}
    bad = await served.get("/api/v1/playbook-runs", params={"limit": 0})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON


async def test_one_runs_report_is_the_stored_model(served: Served) -> None:
    answer = await served.get(f"/api/v1/playbook-runs/{NEWEST.run_id}")
    assert answer.status_code == 200, answer.text
    assert PlaybookRunReport.model_validate(answer.json()) == NEWEST


async def test_an_unknown_run_is_a_404_problem_naming_it(served: Served) -> None:
    answer = await served.get("/api/v1/playbook-runs/playbook-run-nope")
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM_JSON
    body = answer.json()
    assert body["type"] == TYPES + "not-found"
    assert "unknown playbook run 'playbook-run-nope'" in body["detail"]


async def test_no_token_is_401(served: Served) -> None:
    for path in ("/api/v1/playbook-runs", f"/api/v1/playbook-runs/{NEWEST.run_id}"):
        answer = await served.http.get(path)
        assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM_JSON, path
