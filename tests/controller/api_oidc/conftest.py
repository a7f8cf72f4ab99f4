"""The API configured for OIDC against a stand-in issuer served over real HTTP (`issuer.Issuer`).

`oidc_api` builds the real app (`create_app` over `ApiContext.open` with the session's Temporal
client) whose OIDC settings point at the issuer, and talks to it in process through
`httpx.ASGITransport` at http://twinops.test. The app gets one extra route, `GET /_test/whoami`,
that answers the `caller` dependency's view of the request: what every protected endpoint sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.auth import Caller, caller
from controller.api.context import ApiContext
from controller.core.settings import Settings
from tests.controller.api_oidc.issuer import AUDIENCE, Issuer

BASE = "http://twinops.test"


@dataclass
class OidcApi:
    """The app under test, its context and the issuer it trusts."""

    ctx: ApiContext
    http: httpx.AsyncClient
    issuer: Issuer

    async def whoami(self, token: str | None = None) -> httpx.Response:
        """GET /_test/whoami with `token` as a bearer (or the client's cookies when None)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.http.get("/_test/whoami", headers=headers)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    """A running stand-in issuer."""
    with Issuer() as running:
        yield running


def oidc_settings(home: Path, issuer: Issuer, **overrides: Any) -> Settings:
    """Settings with OIDC pointing at `issuer` (discovery for everything else)."""
    return Settings(home=home, oidc_issuer=issuer.url, oidc_audience=AUDIENCE, **overrides)


async def open_api(
    settings: Settings, issuer: Issuer, temporal: TemporalRuntime
) -> tuple[ApiContext, httpx.AsyncClient]:
    """The real app over `settings` with the whoami route, and an in-process client for it."""
    ctx = await ApiContext.open(settings, client=temporal.client)
    app = create_app(settings, context=ctx)

    @app.get("/_test/whoami")
    async def whoami(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        return {"via": who.via, "role": who.role.value, **who.principal.model_dump(mode="json")}

    return ctx, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest_asyncio.fixture
async def oidc_api(issuer: Issuer, temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[OidcApi]:
    """The app trusting `issuer`."""
    ctx, http = await open_api(oidc_settings(tmp_path, issuer), issuer, temporal)
    async with http:
        yield OidcApi(ctx, http, issuer)
    await ctx.close()
