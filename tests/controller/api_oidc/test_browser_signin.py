"""Browser sign-in with OIDC, driven hop by hop with httpx: app -> issuer -> callback -> signed in.

The app runs in process (ASGI) at http://twinops.test; the issuer is a real HTTP server. Each
redirect is followed by hand, so every hop's status, cookies and parameters are checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import structlog

from controller.adapters.temporal_server import TemporalRuntime
from tests.controller.api_oidc.conftest import BASE, OidcApi, oidc_settings, open_api
from tests.controller.api_oidc.issuer import AUDIENCE, Issuer

pytestmark = pytest.mark.integration


def _cookie(response: httpx.Response, name: str) -> dict[str, str | bool]:
    """The attributes of the Set-Cookie header for `name` (lower-case keys; flags as True)."""
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        if name in parsed:
            morsel = parsed[name]
            flags = {k: True for k in ("httponly", "secure") if morsel[k]}
            values = {k: str(morsel[k]) for k in ("path", "samesite", "max-age") if morsel[k]}
            return {"value": morsel.value, **values, **flags}
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


async def start(api: OidcApi, next_path: str = "/api/v1/proposals") -> tuple[httpx.Response, dict[str, str]]:
    """GET /login/oidc: the redirect to the issuer and its query."""
    started = await api.http.get("/login/oidc", params={"next": next_path})
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(api.issuer.url + "/authorize?")
    return started, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def at_issuer(location: str) -> str:
    """The issuer signs the user in and sends the browser back: where to."""
    async with httpx.AsyncClient() as browser_at_issuer:
        answer = await browser_at_issuer.get(location)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def test_signing_in_ends_with_a_session_that_reads_the_api(oidc_api: OidcApi) -> None:
    started, asked = await start(oidc_api)
    assert asked["response_type"] == "code" and asked["client_id"] == AUDIENCE
    assert asked["redirect_uri"] == f"{BASE}/login/oidc/callback" and asked["scope"] == "openid profile"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    flow = _cookie(started, "twinops_oidc")
    assert flow["path"] == "/login/oidc" and flow["samesite"] == "lax" and flow["httponly"] is True
    assert "secure" not in flow, "plain http: not Secure (cookie_secure unset)"

    back = await at_issuer(started.headers["location"])
    assert back.startswith(f"{BASE}/login/oidc/callback?code=")
    with structlog.testing.capture_logs() as logs:
        done = await oidc_api.http.get(back)
    assert done.status_code == 200, done.text
    assert '<meta http-equiv="refresh" content="0;url=/api/v1/proposals">' in done.text
    session = _cookie(done, "twinops_session")
    assert session["samesite"] == "strict" and session["httponly"] is True and session["path"] == "/"
    assert session["max-age"] == str(8 * 3600)
    assert _cookie(done, "twinops_oidc")["max-age"] == "0", "the flow cookie is spent"

    # The PKCE verifier the app sent matches the challenge it asked with.
    [exchange] = oidc_api.issuer.token_requests
    digest = hashlib.sha256(exchange["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == asked["code_challenge"]

    me = await oidc_api.whoami()
    assert me.status_code == 200, me.text
    assert me.json() == {"via": "session", "role": "approver", "id": "olivia", "roles": ["approver"], "team": None}
    queue = await oidc_api.http.get("/api/v1/proposals")
    assert queue.status_code == 200 and queue.json()["items"] == []
    stored = oidc_api.ctx.sessions.get(str(session["value"]))
    assert stored is not None and stored.source == "oidc" and stored.subject == "olivia"

    [signed_in] = [e for e in logs if e["event"] == "oidc.signed_in"]
    assert signed_in["principal"] == "olivia"
    secrets_seen = [str(session["value"]), exchange["code"], exchange["code_verifier"], str(flow["value"])]
    assert not any(s in repr(logs) for s in secrets_seen), "no code, verifier or cookie in the logs"


async def test_a_session_signed_in_with_oidc_needs_the_csrf_token_to_change_anything(oidc_api: OidcApi) -> None:
    started, _ = await start(oidc_api)
    await oidc_api.http.get(await at_issuer(started.headers["location"]))
    forged = await oidc_api.http.post("/api/v1/proposals/p-1/approve", json={"comment": ""})
    assert forged.status_code == 403 and forged.json()["type"].endswith("/csrf-failed"), forged.text


async def test_a_tampered_state_is_refused_and_nobody_is_signed_in(oidc_api: OidcApi) -> None:
    started, _ = await start(oidc_api)
    back = await at_issuer(started.headers["location"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    tampered = f"{BASE}/login/oidc/callback?" + urlencode({**query, "state": query["state"][:-2] + "xx"})
    refused = await oidc_api.http.get(tampered)
    assert refused.status_code == 400
    assert "state mismatch" in refused.text and refused.headers["content-type"].startswith("text/html")
    assert "twinops_session" not in refused.headers.get("set-cookie", "")
    assert oidc_api.issuer.token_requests == [], "no code is exchanged for a foreign answer"
    assert (await oidc_api.whoami()).status_code == 401


async def test_an_answer_without_the_flow_cookie_is_refused(oidc_api: OidcApi) -> None:
    started, _ = await start(oidc_api)
    back = await at_issuer(started.headers["location"])
    # Another browser (no flow cookie) presents the code: login CSRF.
    async with httpx.AsyncClient(transport=oidc_api.http._transport, base_url=BASE) as other:
        refused = await other.get(back)
    assert refused.status_code == 400 and "not started in this browser" in refused.text


async def test_a_forged_flow_cookie_with_its_own_state_cannot_redeem_a_stolen_code(oidc_api: OidcApi) -> None:
    started, _ = await start(oidc_api)
    back = await at_issuer(started.headers["location"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    # An attacker who can set cookies makes up state and verifier: the issuer's PKCE check refuses the code.
    forged = {"state": "s" * 32, "verifier": "v" * 64, "nonce": "n" * 32, "next": "/", "at": int(time.time())}
    raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    oidc_api.http.cookies.set("twinops_oidc", raw, domain="twinops.test", path="/login/oidc")
    refused = await oidc_api.http.get(
        f"{BASE}/login/oidc/callback?" + urlencode({"code": query["code"], "state": "s" * 32})
    )
    assert refused.status_code == 401, refused.text
    assert "PKCE verifier does not match" in refused.text
    assert (await oidc_api.whoami()).status_code == 401


async def test_an_error_from_the_issuer_is_a_readable_401(oidc_api: OidcApi) -> None:
    await start(oidc_api)
    refused = await oidc_api.http.get(
        "/login/oidc/callback", params={"error": "access_denied", "error_description": "<b>user said no</b>"}
    )
    assert refused.status_code == 401
    assert "The identity provider refused the sign-in (access_denied: &lt;b&gt;user said no&lt;/b&gt;)." in refused.text


async def test_a_replayed_code_is_refused(oidc_api: OidcApi) -> None:
    started, _ = await start(oidc_api)
    back = await at_issuer(started.headers["location"])
    flow_cookie = oidc_api.http.cookies.get("twinops_oidc", path="/login/oidc")
    assert (await oidc_api.http.get(back)).status_code == 200
    # The same answer again, with the flow cookie put back: the issuer has spent the code.
    oidc_api.http.cookies.clear()
    oidc_api.http.cookies.set("twinops_oidc", str(flow_cookie), domain="twinops.test", path="/login/oidc")
    again = await oidc_api.http.get(back)
    assert again.status_code == 401 and "invalid_grant: unknown or used code" in again.text


async def test_next_is_kept_only_when_it_is_a_local_path(oidc_api: OidcApi) -> None:
    for asked, landed in (
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/proposals/p-1", "/proposals/p-1"),
    ):
        oidc_api.http.cookies.clear()
        started, _ = await start(oidc_api, asked)
        done = await oidc_api.http.get(await at_issuer(started.headers["location"]))
        assert f'content="0;url={landed}"' in done.text, (asked, done.text)


async def test_failed_callbacks_are_rate_limited_per_client(oidc_api: OidcApi) -> None:
    for _ in range(oidc_api.ctx.limiter.limit):
        answer = await oidc_api.http.get("/login/oidc/callback", params={"code": "c", "state": "s"})
        assert answer.status_code == 400
    blocked = await oidc_api.http.get("/login/oidc/callback", params={"code": "c", "state": "s"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


async def test_a_confidential_client_sends_its_secret(temporal: TemporalRuntime, tmp_path: Path) -> None:
    with Issuer(client_secret="s3cret") as issuer:
        settings = oidc_settings(tmp_path, issuer, oidc_client_id="twinops-web", oidc_client_secret="s3cret")
        ctx, http = await open_api(settings, issuer, temporal)
        async with http:
            api = OidcApi(ctx, http, issuer)
            started, asked = await start(api)
            assert asked["client_id"] == "twinops-web"
            done = await http.get(await at_issuer(started.headers["location"]))
            assert done.status_code == 200, done.text
            assert (await api.whoami()).json()["id"] == "olivia"
        await ctx.close()


async def test_without_oidc_settings_the_sign_in_says_it_is_not_configured(
    temporal: TemporalRuntime, tmp_path: Path
) -> None:
    from controller.api.app import create_app
    from controller.api.context import ApiContext
    from controller.core.settings import Settings

    settings = Settings(home=tmp_path)
    ctx = await ApiContext.open(settings, client=temporal.client)
    transport = httpx.ASGITransport(app=create_app(settings, context=ctx))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        answer = await http.get("/login/oidc")
    await ctx.close()
    assert answer.status_code == 404 and "TWINOPS_OIDC_ISSUER is unset" in answer.text
