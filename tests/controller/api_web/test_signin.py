"""Signing in and out of the pages: cookie flags, the failure limit, CSRF, where `next` may lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from controller.adapters.temporal_server import TemporalRuntime
from controller.api.auth import SESSION_COOKIE
from controller.api.web.render import safe_next
from controller.api.web.signin import SIGNIN_COOKIE
from tests.controller.api_web.conftest import HTML, Web, browser, csrf_of, open_web, sign_in, signed_in


def cookie_header(response: httpx.Response, name: str) -> str:
    """The Set-Cookie line for `name`."""
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(name + "=")]
    assert len(lines) == 1, lines
    return lines[0]


async def test_signing_in_sets_a_strict_http_only_session_cookie(web: Web) -> None:
    async with await browser(web.app) as http:
        answer = await sign_in(http, web.tokens["alice"])
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        flags = [p.strip().lower() for p in cookie_header(answer, SESSION_COOKIE).split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
        assert f"max-age={int(web.ctx.session_ttl.total_seconds())}" in flags
        assert "secure" not in flags  # plain http and cookie_secure unset
        queue = await http.get("/", headers=HTML)
    assert queue.status_code == 200
    assert "<h1>Approval queue</h1>" in queue.text and "alice" in queue.text
    assert "default-src 'self'" in queue.headers["content-security-policy"]


@pytest.mark.parametrize(("setting", "base"), [(True, "http://testserver"), (None, "https://testserver")])
async def test_the_cookie_is_secure_behind_tls_or_when_configured(
    temporal: TemporalRuntime, tmp_path: Path, setting: bool | None, base: str
) -> None:
    web = await open_web(tmp_path, temporal, cookie_secure=setting)
    async with await browser(web.app, base) as http:
        form = await http.get("/login", headers=HTML)
        signin = cookie_header(form, SIGNIN_COOKIE)
        assert "secure" in [p.strip().lower() for p in signin.split(";")]
        # Over plain http a browser would not send a Secure cookie back; a TLS proxy in front would.
        answer = await http.post(
            "/login",
            data={"csrf_token": csrf_of(form), "token": web.tokens["alice"]},
            headers={**HTML, "Cookie": signin.split(";")[0]},
        )
    await web.ctx.close()
    assert answer.status_code == 303
    assert "secure" in [p.strip().lower() for p in cookie_header(answer, SESSION_COOKIE).split(";")]


async def test_wrong_tokens_count_and_the_sixth_try_is_refused_429(web: Web) -> None:
    async with await browser(web.app) as http:
        statuses = [(await sign_in(http, "tw_not-a-real-token")).status_code for _ in range(5)]
        sixth = await sign_in(http, web.tokens["alice"])  # even a good token waits
    assert statuses == [401] * 5
    assert sixth.status_code == 429
    assert int(sixth.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in sixth.text
    assert SESSION_COOKIE not in sixth.headers.get("set-cookie", "")


async def test_the_sign_in_form_needs_its_own_one_time_value(web: Web) -> None:
    async with await browser(web.app) as http:
        forged = await http.post("/login", data={"token": web.tokens["alice"]}, headers=HTML)
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("wanted", "goes_to"),
    [
        ("/proposals/p-123?x=1", "/proposals/p-123?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("http:/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/login", "/"),
        ("", "/"),
    ],
)
async def test_next_never_leaves_the_site(web: Web, wanted: str, goes_to: str) -> None:
    async with await browser(web.app) as http:
        answer = await sign_in(http, web.tokens["vera"], next_path=wanted)
    assert answer.status_code == 303
    assert answer.headers["location"] == goes_to


def test_safe_next_refuses_control_characters() -> None:
    assert safe_next("/a\r\nSet-Cookie: x=1") == "/"
    assert safe_next("/\tevil") == "/"
    assert safe_next("/history?cursor=abc") == "/history?cursor=abc"


async def test_pages_send_a_signed_out_browser_to_sign_in_and_back(web: Web) -> None:
    async with await browser(web.app) as http:
        answer = await http.get("/history?cursor=x", headers=HTML)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/history%3Fcursor%3Dx"
        form = await http.get(answer.headers["location"], headers=HTML)
        assert 'name="next" value="/history?cursor=x"' in form.text
        poll = await http.get("/queue/rows", headers={"X-Twinops-Fetch": "1"})
    assert poll.status_code == 401  # a page's script is told, not redirected


async def test_a_form_post_without_the_csrf_token_is_refused(web: Web) -> None:
    async with signed_in(web.app, web.tokens["ada"]) as (http, csrf):
        refused = await http.post("/logout", data={}, headers=HTML)
        wrong = await http.post(
            "/users", data={"csrf_token": csrf + "x", "name": "mallory", "role": "admin"}, headers=HTML
        )
        still = await http.get("/", headers=HTML)
    assert refused.status_code == 403 and wrong.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "CSRF" in refused.text
    assert still.status_code == 200  # the session is untouched
    assert "mallory" not in [u.name for u in web.ctx.identities.list_users()]


async def test_signing_out_ends_the_session(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        cookie = http.cookies[SESSION_COOKIE]
        out = await http.post("/logout", data={"csrf_token": csrf}, headers=HTML)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert "max-age=0" in cookie_header(out, SESSION_COOKIE).lower()
        assert web.ctx.sessions.get(cookie) is None
        http.cookies.set(SESSION_COOKIE, cookie)  # a copy of the old cookie signs nobody in
        again = await http.get("/", headers=HTML)
    assert again.status_code == 303 and again.headers["location"] == "/login"


async def test_an_expired_session_goes_back_to_sign_in(web: Web) -> None:
    principal = web.ctx.identities.resolve(web.tokens["alice"])
    past = datetime.now(UTC) - timedelta(hours=9)
    cookie, _ = web.ctx.sessions.create(principal, source="token", ttl=timedelta(hours=8), now=past)
    async with await browser(web.app) as http:
        http.cookies.set(SESSION_COOKIE, cookie)
        answer = await http.get("/", headers=HTML)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert "max-age=0" in cookie_header(answer, SESSION_COOKIE).lower()


async def test_a_signed_in_browser_skips_the_form(web: Web) -> None:
    async with signed_in(web.app, web.tokens["vera"]) as (http, _):
        answer = await http.get("/login?next=/history", headers=HTML)
    assert answer.status_code == 303 and answer.headers["location"] == "/history"


async def test_the_sso_link_shows_only_with_oidc(web: Web, temporal: TemporalRuntime, tmp_path: Path) -> None:
    async with await browser(web.app) as http:
        plain = await http.get("/login?next=/history", headers=HTML)
    with_oidc = await open_web(tmp_path / "oidc", temporal, oidc_issuer="https://issuer.test", oidc_audience="twinops")
    async with await browser(with_oidc.app) as http:
        sso = await http.get("/login?next=/history", headers=HTML)
    await with_oidc.ctx.close()
    assert "Sign in with SSO" not in plain.text
    assert '<a class="button" href="/login/oidc?next=/history">Sign in with SSO</a>' in sso.text
