"""Users and tokens through the API, for admins: the same store and the same rules as `twinops users`."""

from __future__ import annotations

import pytest

from tests.controller.api.conftest import PROBLEM_JSON, Api

pytestmark = pytest.mark.integration


def invalid(answer_json: dict[str, object]) -> list[str]:
    params = answer_json["invalid-params"]
    assert isinstance(params, list)
    return [str(p["name"]) for p in params]


async def test_an_admin_adds_a_user_whose_token_works(api: Api) -> None:
    added = await api.post(
        "/api/v1/users", "ada", json={"name": "sam", "role": "approver", "team": "edge", "groups": ["sre"]}
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["token"].startswith("tw_")
    user = body["user"]
    assert (user["name"], user["role"], user["team"], user["groups"]) == ("sam", "approver", "edge", ["sre"])
    assert user["active_tokens"] == 1 and user["disabled"] is False
    api.tokens["sam"] = body["token"]
    assert (await api.get("/api/v1/proposals", "sam")).status_code == 200
    listed = (await api.get("/api/v1/users", "ada")).json()
    assert [u["name"] for u in listed] == sorted(u["name"] for u in listed)
    assert "sam" in {u["name"] for u in listed}
    assert all("token" not in u for u in listed)

    another = await api.post("/api/v1/users/sam/tokens", "ada")
    assert another.status_code == 201 and another.json()["token"] != body["token"]
    assert (await api.delete("/api/v1/users/sam/tokens", "ada")).json() == {"user": "sam", "revoked": 2}
    assert (await api.get("/api/v1/proposals", "sam")).status_code == 401
    # A disabled user gets no new token until enabled again.
    assert (await api.post("/api/v1/users/sam/disable", "ada")).json()["disabled"] is True
    refused = await api.post("/api/v1/users/sam/tokens", "ada")
    assert refused.status_code == 409 and refused.json()["detail"] == (
        "user 'sam' is disabled; enable it before issuing a token"
    )
    assert (await api.post("/api/v1/users/sam/enable", "ada")).status_code == 200
    api.tokens["sam"] = (await api.post("/api/v1/users/sam/tokens", "ada")).json()["token"]
    assert (await api.get("/api/v1/proposals", "sam")).status_code == 200


async def test_user_management_refuses_bad_input_naming_the_field(api: Api) -> None:
    for body, field in [
        ({"name": "no spaces allowed", "role": "viewer"}, "body.name"),
        ({"name": "x", "role": "overlord"}, "body.role"),
        ({"role": "viewer"}, "body.name"),
        ({"name": "x", "role": "viewer", "password": "hunter2"}, "body.password"),
        ({"name": "x", "groups": "sre"}, "body.groups"),
    ]:
        answer = await api.post("/api/v1/users", "ada", json=body)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM_JSON, body
        assert invalid(answer.json()) == [field], body
    # A group may not be named like a role (the principal's roles hold both).
    named_like_a_role = await api.post("/api/v1/users", "ada", json={"name": "x", "groups": ["sre", "Admin"]})
    assert named_like_a_role.status_code == 422 and invalid(named_like_a_role.json()) == ["body.groups"]
    assert "'Admin' is a role name" in named_like_a_role.json()["invalid-params"][0]["reason"]
    bad_group = await api.post("/api/v1/users", "ada", json={"name": "x", "groups": ["no spaces"]})
    assert invalid(bad_group.json()) == ["body.groups"]
    assert (await api.post("/api/v1/users", "ada", json={"name": "alice"})).status_code == 409
    for method, path in [
        ("post", "/api/v1/users/nobody/tokens"),
        ("delete", "/api/v1/users/nobody/tokens"),
        ("post", "/api/v1/users/nobody/disable"),
        ("post", "/api/v1/users/nobody/enable"),
    ]:
        answer = await getattr(api, method)(path, "ada")
        assert answer.status_code == 404 and answer.json()["detail"] == "unknown user 'nobody'", path


async def test_the_last_admin_cannot_be_locked_out(api: Api) -> None:
    disable = await api.post("/api/v1/users/ada/disable", "ada")
    assert disable.status_code == 409 and "last admin" in disable.json()["detail"]
    revoke = await api.delete("/api/v1/users/ada/tokens", "ada")
    assert revoke.status_code == 409
    assert (await api.get("/api/v1/users", "ada")).status_code == 200
