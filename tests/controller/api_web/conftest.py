"""The web pages in process: the real app over real SQLite stores and the session's Temporal dev server.

`web` is the app without a worker (sign-in, sessions, CSRF, users need none); tests of a
proposal page use `api` and `pending` from tests/controller/api (one stack per module, a
real RemediationWorkflow waiting for approval, rejected after the test); a test that lets a
plan execute changes the estate, so it builds its own stack. Browsers sign in the way
a person does: GET /login for the form, POST the token with the form's one-time value.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest_asyncio

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.core.settings import Settings
from tests.controller.api.conftest import api, pending  # noqa: F401 - fixtures for the proposal page tests

BASE = "http://testserver"
HTML = {"Accept": "text/html"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(page.text)
    assert found, f"no csrf_token field on {page.url}"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, token: str, next_path: str | None = None) -> httpx.Response:
    """Sign in through the form; returns the POST's answer (not followed)."""
    form = await http.get("/login", headers=HTML)
    assert form.status_code == 200, form.text
    data = {"csrf_token": csrf_of(form), "token": token}
    if next_path is not None:
        data["next"] = next_path
    return await http.post("/login", data=data, headers=HTML)


async def browser(app: object, base_url: str = BASE) -> httpx.AsyncClient:
    """A cookie-keeping client for `app` (ASGI in process)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


@asynccontextmanager
async def signed_in(app: object, token: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser signed in with `token`, and its session's CSRF token (from the queue page)."""
    async with await browser(app) as http:
        answer = await sign_in(http, token)
        assert answer.status_code == 303, answer.text
        queue = await http.get("/", headers=HTML)
        assert queue.status_code == 200, queue.text
        yield http, csrf_of(queue)


@dataclass
class Web:
    """The app, its context and the users' tokens."""

    ctx: ApiContext
    app: object
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)


async def open_web(home: Path, temporal: TemporalRuntime, **overrides: object) -> Web:
    """The app over fresh stores under `home`, with vera (viewer), alice (approver) and ada (admin)."""
    settings = Settings(home=home, **overrides)  # type: ignore[arg-type]
    ctx = await ApiContext.open(settings, client=temporal.client)
    ids = ctx.identities
    tokens = {
        "vera": ids.add_user("vera", "viewer", "edge"),
        "alice": ids.add_user("alice", "approver", "edge", ["sre"]),
        "ada": ids.add_user("ada", "admin", "platform", ["sre"]),
    }
    return Web(ctx, create_app(settings, context=ctx), settings, tokens)


@pytest_asyncio.fixture
async def web(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[Web]:
    """The app with no worker behind it: enough for sign-in, sessions, CSRF and users."""
    opened = await open_web(tmp_path, temporal)
    yield opened
    await opened.ctx.close()
