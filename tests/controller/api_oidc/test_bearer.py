"""Bearer JWTs from the issuer on the API: a valid one authenticates, every bad one is a 401 problem naming why."""

from __future__ import annotations

import time

import pytest
import structlog

from tests.controller.api_oidc.conftest import OidcApi
from tests.controller.api_oidc.issuer import hs256_token, unsigned_token

pytestmark = pytest.mark.integration


async def test_a_valid_token_authenticates_with_the_role_team_and_groups_of_its_claims(oidc_api: OidcApi) -> None:
    answer = await oidc_api.whoami(oidc_api.issuer.mint())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "via": "oidc",
        "role": "approver",
        "id": "olivia",
        "roles": ["approver", "sre"],
        "team": "edge",
    }
    viewer = await oidc_api.whoami(oidc_api.issuer.mint(oidc_api.issuer.claims(twinops_role="viewer")))
    assert viewer.json()["roles"] == ["viewer"], "a viewer's groups grant nothing"


async def test_a_valid_token_reads_the_queue_and_a_viewer_token_may_not_decide(oidc_api: OidcApi) -> None:
    issuer = oidc_api.issuer
    listed = await oidc_api.http.get("/api/v1/proposals", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    viewer = issuer.mint(issuer.claims(twinops_role="viewer"))
    denied = await oidc_api.http.post(
        "/api/v1/proposals/p-1/approve", json={"comment": ""}, headers={"Authorization": f"Bearer {viewer}"}
    )
    assert denied.status_code == 403, denied.text
    assert denied.json()["detail"] == "user 'olivia' (viewer) needs the approver role for this"


async def test_local_api_tokens_still_work_beside_oidc(oidc_api: OidcApi) -> None:
    token = oidc_api.ctx.identities.add_user("tess", "approver", "edge", groups=["sre"])
    answer = await oidc_api.whoami(token)
    assert answer.status_code == 200 and answer.json()["via"] == "token" and answer.json()["id"] == "tess"


def _bad_tokens(oidc_api: OidcApi) -> dict[str, tuple[str, str]]:
    issuer = oidc_api.issuer
    now = int(time.time())
    issuer.add_key("stranger", publish=False)
    return {
        "wrong audience": (issuer.mint(issuer.claims(aud="grafana")), "wrong audience 'grafana': expected 'twinops'"),
        "wrong issuer": (
            issuer.mint(issuer.claims(iss="https://evil.example")),
            f"issuer 'https://evil.example' is not {issuer.url!r}",
        ),
        "expired": (issuer.mint(issuer.claims(iat=now - 7200, exp=now - 3600)), "token expired"),
        "another key": (
            issuer.mint(kid="stranger"),
            "token signed by an unknown key (kid 'stranger' is not in the issuer's JWKS)",
        ),
        "alg none": (
            unsigned_token(issuer.claims(), {"alg": "none", "kid": "rsa-1"}),
            "token algorithm 'none' is not accepted (only ES256, EdDSA, RS256)",
        ),
        "HS256": (
            hs256_token(issuer.claims(), b"a shared secret"),
            "token algorithm 'HS256' is not accepted (only ES256, EdDSA, RS256)",
        ),
    }


async def test_bad_tokens_are_refused_as_401_problems_naming_why_and_logged_without_the_token(
    oidc_api: OidcApi,
) -> None:
    for case, (token, reason) in _bad_tokens(oidc_api).items():
        with structlog.testing.capture_logs() as logs:
            answer = await oidc_api.whoami(token)
        assert answer.status_code == 401, (case, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"] == 'Bearer realm="twinops"'
        assert answer.json()["detail"] == reason, case
        [denied] = [e for e in logs if e["event"] == "api.denied"]
        assert denied["reason"] == reason and denied["path"] == "/_test/whoami"
        assert token not in repr(logs), f"{case}: the token reached a log"
