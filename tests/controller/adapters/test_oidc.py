"""OidcVerifier against an issuer served over real HTTP: what it accepts, what it refuses and why, key caching."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from controller.adapters.oidc import ClaimNames, OidcVerifier
from controller.core.errors import AuthenticationError
from controller.core.settings import Settings
from tests.controller.api_oidc.issuer import AUDIENCE, Issuer, hs256_token, unsigned_token
from workflows.contracts import Principal


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


def verifier_for(issuer: Issuer, **options: float) -> OidcVerifier:
    settings = Settings(oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    built = OidcVerifier.from_settings(settings)
    for name, value in options.items():
        setattr(built, name, value)
    return built


async def refusal(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.principal(token)
    assert token not in str(caught.value), "a refusal never quotes the token"
    return str(caught.value)


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_a_valid_token_of_each_algorithm_maps_to_an_approver_with_its_groups(issuer: Issuer, kid: str) -> None:
    principal = await verifier_for(issuer).principal(issuer.mint(kid=kid))
    assert principal == Principal(id="olivia", roles=["approver", "sre"], team="edge")


async def test_claims_map_like_local_users_do(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)

    async def of(**claims: object) -> Principal:
        return await verifier.principal(issuer.mint(issuer.claims(**claims)))

    # A viewer's groups grant nothing, as for a local viewer.
    assert await of(twinops_role="viewer") == Principal(id="olivia", roles=["viewer"], team="edge")
    # Missing or unknown role: viewer.
    assert (await of(twinops_role=None)).roles == ["viewer"]
    assert (await of(twinops_role="root")).roles == ["viewer"]
    # An issuer cannot mint a machine: `system` exists only as a twinops user with a token.
    assert (await of(twinops_role="system")).roles == ["viewer"]
    # A list holding roles: the highest; admin implies approver.
    assert (await of(twinops_role=["viewer", "admin"], groups=[])).roles == ["admin", "approver"]
    # No name claim: `sub`. No team claim: none.
    assert await of(preferred_username=None, team=None, groups=[]) == Principal(id="u-1", roles=["approver"])
    # A group named like a role must not become the role; malformed names are dropped too.
    assert (await of(groups=["sre", "admin", "ADMIN", "bad group", 7])).roles == ["approver", "sre"]
    # One group as a bare string.
    assert (await of(groups="dba")).roles == ["approver", "dba"]


async def test_claim_names_come_from_the_settings(issuer: Issuer) -> None:
    settings = Settings(
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_name_claim="email",
        oidc_role_claim="role",
        oidc_team_claim="department",
        oidc_groups_claim="teams",
    )
    verifier = OidcVerifier.from_settings(settings)
    assert verifier.claim_names == ClaimNames(name="email", role="role", team="department", groups="teams")
    token = issuer.mint(issuer.claims(email="o@example.com", role="approver", department="db", teams=["dba"]))
    assert await verifier.principal(token) == Principal(id="o@example.com", roles=["approver", "dba"], team="db")


async def test_wrong_audience_issuer_expiry_and_times_are_refused_with_the_reason(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    now = int(time.time())
    assert (await refusal(verifier, issuer.mint(issuer.claims(aud="someone-else")))).startswith(
        "wrong audience 'someone-else': expected 'twinops'"
    )
    wrong_iss = await refusal(verifier, issuer.mint(issuer.claims(iss="https://evil.example")))
    assert wrong_iss == f"issuer 'https://evil.example' is not {issuer.url!r}"
    assert await refusal(verifier, issuer.mint(issuer.claims(exp=now - 3600, iat=now - 7200))) == "token expired"
    assert "nbf" in await refusal(verifier, issuer.mint(issuer.claims(nbf=now + 3600)))
    assert "issued in the future" in await refusal(verifier, issuer.mint(issuer.claims(iat=now + 3600)))
    assert await refusal(verifier, issuer.mint(issuer.claims(exp=None))) == "token lacks the 'exp' claim"
    # Within the leeway a clock a little behind the issuer's is fine.
    assert (await verifier.principal(issuer.mint(issuer.claims(iat=now + 20, nbf=now + 20)))).id == "olivia"


async def test_a_token_signed_by_another_key_is_refused(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    issuer.add_key("stranger", publish=False)
    unknown = await refusal(verifier, issuer.mint(kid="stranger"))
    assert unknown == "token signed by an unknown key (kid 'stranger' is not in the issuer's JWKS)"
    # Same kid as a published key, another private key: the signature does not verify.
    issuer.keys["rsa-1"], real = issuer.keys["stranger"], issuer.keys["rsa-1"]
    forged = issuer.mint(kid="rsa-1")
    issuer.keys["rsa-1"] = real
    assert await refusal(verifier, forged) == "token signature does not verify with the issuer's key"


async def test_none_and_hmac_algorithms_are_refused_before_any_key_is_used(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    none = unsigned_token(issuer.claims(), {"alg": "none", "typ": "JWT", "kid": "rsa-1"})
    assert await refusal(verifier, none) == "token algorithm 'none' is not accepted (only ES256, EdDSA, RS256)"
    # The classic confusion: the issuer's public key used as an HMAC secret.
    public_pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hs256 = hs256_token(issuer.claims(), public_pem)
    assert "'HS256' is not accepted" in await refusal(verifier, hs256)
    # A header naming an accepted algorithm that is not the key's own.
    mismatched = unsigned_token(issuer.claims(), {"alg": "ES256", "kid": "rsa-1"}) + "c2ln"
    assert await refusal(verifier, mismatched) == "token says ES256 but key 'rsa-1' is an RS256 key"
    assert await refusal(verifier, "not-a-jwt") == "not a JWT (malformed header)"


async def test_keys_are_cached_and_fetched_again_once_for_a_new_kid(issuer: Issuer) -> None:
    verifier = verifier_for(issuer, refetch_after=0.0)
    for _ in range(3):
        await verifier.principal(issuer.mint())
    assert issuer.fetches["/jwks"] == 1 and issuer.fetches["/.well-known/openid-configuration"] == 1
    # The issuer rotates in a new key: the first token naming it fetches the JWKS once more.
    issuer.add_key("rsa-2")
    assert (await verifier.principal(issuer.mint(kid="rsa-2"))).id == "olivia"
    await verifier.principal(issuer.mint(kid="rsa-2"))
    assert issuer.fetches["/jwks"] == 2


async def test_made_up_kids_do_not_make_it_hammer_the_issuer(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)  # refetch at most every 10 s
    await verifier.principal(issuer.mint())
    issuer.add_key("stranger", publish=False)
    for _ in range(5):
        await refusal(verifier, issuer.mint(kid="stranger"))
    assert issuer.fetches["/jwks"] == 1


async def test_the_jwks_url_may_be_configured_instead_of_discovered(issuer: Issuer) -> None:
    settings = Settings(oidc_issuer=issuer.url, oidc_audience=AUDIENCE, oidc_jwks_url=issuer.url + "/jwks")
    assert (await OidcVerifier.from_settings(settings).principal(issuer.mint())).id == "olivia"
    assert issuer.fetches["/.well-known/openid-configuration"] == 0


async def test_a_discovery_document_for_another_issuer_is_refused(issuer: Issuer) -> None:
    issuer.discovery_issuer = "https://other.example"
    reason = await refusal(verifier_for(issuer), issuer.mint())
    assert reason.endswith(f"names issuer 'https://other.example', not {issuer.url!r}")


async def test_an_issuer_that_does_not_answer_fails_within_the_deadline() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        verifier = OidcVerifier(url, AUDIENCE, fetch_timeout_seconds=0.5)
        token = unsigned_token({"sub": "x"}, {"alg": "RS256", "kid": "a"}) + "c2ln"
        started = time.monotonic()
        reason = await refusal(verifier, token)
    assert time.monotonic() - started < 2.0
    assert (
        reason
        == f"the issuer's discovery document at {url}/.well-known/openid-configuration did not answer within 0.5s"
    )
