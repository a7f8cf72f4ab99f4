"""Who may do what: tokens, roles, revoked and disabled users, browser sessions and their CSRF token.

Every refusal is a problem document with a stable type; nothing is decided on a refused call
(the proposal's approvals stay as they were).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from tests.controller.api.conftest import PROBLEM_JSON, Api, Pending

pytestmark = pytest.mark.integration

TYPES = "https://twinops.dev/problems/"


async def test_no_credential_or_a_bad_one_is_401(api: Api) -> None:
    for headers in [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer tw_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer "},
    ]:
        answer = await api.http.get("/api/v1/proposals", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.headers["www-authenticate"] == 'Bearer realm="twinops"'
        assert answer.json()["type"] == TYPES + "unauthenticated"
    # An unknown session cookie is as bad as an unknown token.
    answer = await api.http.get("/api/v1/proposals", headers={"Cookie": "twinops_session=forged"})
    assert answer.status_code == 401 and "session expired or signed out" in answer.json()["detail"]


async def test_roles_decide_what_each_user_may_do(api: Api, pending: Pending) -> None:
    url = f"/api/v1/proposals/{pending.proposal_id}"
    with capture_logs() as logs:
        viewer_approves = await api.post(f"{url}/approve", "vera", json={})
    assert viewer_approves.status_code == 403 and viewer_approves.headers["content-type"] == PROBLEM_JSON
    assert viewer_approves.json()["detail"] == "user 'vera' (viewer) needs the approver role for this"
    # The refusal is logged with the principal and the reason, never with the token.
    [denied] = [e for e in logs if e["event"] == "api.denied"]
    assert denied["principal"] == "vera" and denied["status"] == 403
    assert api.tokens["vera"] not in str(logs)
    for verb, body in [("reject", {"reason": "no"}), ("cancel", {"reason": "no"})]:
        assert (await api.post(f"{url}/{verb}", "vera", json=body)).status_code == 403, verb
    # The viewer holds group sre, but a viewer's groups grant nothing: the refusal comes before any body check.
    assert (await api.post(f"{url}/approve", "vera", json={"unknown": 1})).status_code == 403
    # Viewers read everything.
    for path in [url, "/api/v1/proposals", f"/api/v1/remediations/{pending.proposal_id}/trail"]:
        assert (await api.get(path, "vera")).status_code == 200, path
    # Approvers do not manage users; admins do.
    for user in ("vera", "alice"):
        answer = await api.get("/api/v1/users", user)
        assert answer.status_code == 403 and answer.json()["type"] == TYPES + "forbidden", user
        assert (await api.post("/api/v1/users", user, json={"name": "mallory", "role": "admin"})).status_code == 403
        assert (await api.delete("/api/v1/users/ada/tokens", user)).status_code == 403
    assert (await api.get("/api/v1/users", "ada")).status_code == 200
    # Nothing was decided by the refused calls.
    detail = (await api.get(url, "vera")).json()
    assert detail["approvals"]["given"] == [] and detail["stage"] == "awaiting_approval"


async def test_revoked_and_disabled_users_are_401(api: Api) -> None:
    ids = api.ctx.identities
    api.tokens["rita"] = ids.add_user("rita", "approver", "edge", ["sre"])
    api.tokens["dan"] = ids.add_user("dan", "approver", "edge", ["sre"])
    assert (await api.get("/api/v1/proposals", "rita")).status_code == 200
    assert (await api.delete("/api/v1/users/rita/tokens", "ada")).json() == {"user": "rita", "revoked": 1}
    revoked = await api.get("/api/v1/proposals", "rita")
    assert revoked.status_code == 401 and revoked.json()["detail"] == "API token of user 'rita' has been revoked"
    assert (await api.post("/api/v1/users/dan/disable", "ada")).json()["disabled"] is True
    disabled = await api.get("/api/v1/proposals", "dan")
    assert disabled.status_code == 401 and disabled.json()["detail"] == "user 'dan' is disabled"
    assert (await api.post("/api/v1/users/dan/enable", "ada")).json()["disabled"] is False
    assert (await api.get("/api/v1/proposals", "dan")).status_code == 200


async def test_a_session_needs_its_csrf_token_to_decide(api: Api, pending: Pending) -> None:
    principal = await api.ctx.approvals.principal_of(api.tokens["alice"])
    cookie, session = api.ctx.sessions.create(principal, source="token", ttl=timedelta(minutes=10))
    browser = {"Cookie": f"twinops_session={cookie}"}
    url = f"/api/v1/proposals/{pending.proposal_id}"
    # Reading needs no CSRF token.
    assert (await api.http.get(url, headers=browser)).status_code == 200
    for headers in [browser, {**browser, "X-CSRF-Token": "guessed"}]:
        forged = await api.http.post(f"{url}/approve", headers=headers, json={})
        assert forged.status_code == 403 and forged.headers["content-type"] == PROBLEM_JSON
        assert forged.json()["type"] == TYPES + "csrf-failed"
    assert (await api.get(url, "vera")).json()["approvals"]["given"] == []
    genuine = await api.http.post(f"{url}/approve", headers={**browser, "X-CSRF-Token": session.csrf}, json={})
    assert genuine.status_code == 200, genuine.text
    assert genuine.json()["counted"] is True and genuine.json()["approvals"] == ["alice"]


async def test_an_expired_or_ended_session_is_401(api: Api) -> None:
    principal = await api.ctx.approvals.principal_of(api.tokens["vera"])
    long_ago = datetime.now(UTC) - timedelta(hours=9)
    expired, _ = api.ctx.sessions.create(principal, source="token", ttl=timedelta(hours=8), now=long_ago)
    answer = await api.http.get("/api/v1/proposals", headers={"Cookie": f"twinops_session={expired}"})
    assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["detail"] == "session expired or signed out; sign in again"
    live, _ = api.ctx.sessions.create(principal, source="token", ttl=timedelta(hours=8))
    assert (await api.http.get("/api/v1/proposals", headers={"Cookie": f"twinops_session={live}"})).status_code == 200
    api.ctx.sessions.end(live)
    assert (await api.http.get("/api/v1/proposals", headers={"Cookie": f"twinops_session={live}"})).status_code == 401
