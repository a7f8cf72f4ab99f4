"""The users page: admins only; a new user's token is shown once and works; revoking ends sessions."""

from __future__ import annotations

import html
import re

from controller.api.auth import SESSION_COOKIE
from tests.controller.api_web.conftest import HTML, Web, browser, sign_in, signed_in


async def test_only_admins_see_the_users_page(web: Web) -> None:
    async with signed_in(web.app, web.tokens["alice"]) as (http, csrf):
        page = await http.get("/users", headers=HTML)
        post = await http.post("/users", data={"csrf_token": csrf, "name": "eve", "role": "admin"}, headers=HTML)
        queue = await http.get("/", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "needs the admin role" in page.text
    assert post.status_code == 403
    assert "eve" not in [u.name for u in web.ctx.identities.list_users()]
    assert 'href="/users"' not in queue.text  # no link to what they cannot open


async def test_an_admin_adds_a_user_whose_token_is_shown_once_and_signs_in(web: Web) -> None:
    async with signed_in(web.app, web.tokens["ada"]) as (http, csrf):
        added = await http.post(
            "/users",
            data={"csrf_token": csrf, "name": "bob", "role": "approver", "team": "payments", "groups": "sre, network"},
            headers=HTML,
        )
        listing = await http.get("/users", headers=HTML)
        bad = await http.post("/users", data={"csrf_token": csrf, "name": "no spaces", "role": "viewer"}, headers=HTML)
        again = await http.post("/users", data={"csrf_token": csrf, "name": "bob", "role": "viewer"}, headers=HTML)
        role = await http.post("/users", data={"csrf_token": csrf, "name": "carl", "role": "root"}, headers=HTML)
    assert added.status_code == 200
    token = re.search(r'<code class="token" id="new-token">(tw_[^<]+)</code>', added.text)
    assert token, added.text
    assert token.group(1) not in listing.text  # shown once
    assert "network, sre" in listing.text
    assert bad.status_code == 422 and "use 1-100 letters" in html.unescape(bad.text)
    assert again.status_code == 409 and "already exists" in html.unescape(again.text)
    assert role.status_code == 422 and "role must be one of" in role.text
    async with await browser(web.app) as bob:
        assert (await sign_in(bob, html.unescape(token.group(1)))).status_code == 303


async def test_revoking_tokens_ends_the_users_sessions(web: Web) -> None:
    async with (
        signed_in(web.app, web.tokens["alice"]) as (alice, _),
        signed_in(web.app, web.tokens["ada"]) as (admin, csrf),
    ):
        assert (await alice.get("/", headers=HTML)).status_code == 200
        revoked = await admin.post("/users/alice/revoke", data={"csrf_token": csrf}, headers=HTML)
        after = await alice.get("/", headers=HTML)
        disabled = await admin.post("/users/alice/disable", data={"csrf_token": csrf}, headers=HTML)
        enabled = await admin.post("/users/alice/enable", data={"csrf_token": csrf}, headers=HTML)
        fresh = await admin.post("/users/alice/token", data={"csrf_token": csrf}, headers=HTML)
        unknown = await admin.post("/users/nobody/disable", data={"csrf_token": csrf}, headers=HTML)
        self_lockout = await admin.post("/users/ada/disable", data={"csrf_token": csrf}, headers=HTML)
    assert revoked.status_code == 200 and "revoked 1 token(s) of alice; ended 1 session(s)" in revoked.text
    assert after.status_code == 303 and after.headers["location"] == "/login"
    assert SESSION_COOKIE in after.headers.get("set-cookie", "")
    assert "disabled alice" in disabled.text and "enabled alice" in enabled.text
    assert '<code class="token" id="new-token">tw_' in fresh.text
    assert unknown.status_code == 404 and "unknown user" in html.unescape(unknown.text)
    assert self_lockout.status_code == 409  # the last admin stays
