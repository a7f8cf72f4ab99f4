"""OIDC: check a JWT from the configured issuer and map its claims to a twinops principal.

Used for bearer JWTs on the API and for the id_token of the browser sign-in
(`controller.api.signin_oidc`). A token counts only when all of these hold:

- its header names RS256, ES256 or EdDSA (never `none`, never an HMAC algorithm: with HS256 a
  public key would become a shared secret) and the key's own algorithm is the same;
- it is signed by a key in the issuer's JWKS (fetched over HTTPS with a deadline, cached, fetched
  again at most once per `refetch_after` when a token names an unknown `kid`, so a key rotation
  is picked up and a stream of made-up kids cannot make us hammer the issuer);
- `iss` equals the configured issuer, `aud` holds the expected audience, `exp`, `iat` (and `nbf`
  when present) are right within a small leeway.

Claims map to a principal through `Identities.principal`, so groups count only for approvers,
exactly as for local users: the role claim (viewer, approver or admin; missing or unknown means
viewer), the team claim, the groups claim (a list; names that are not valid group names or are
role names are dropped, a group called "admin" must not become the role). The name is the name
claim, else `sub`: choose a claim the IdP controls, since it is the identity approvals are counted by.

Tokens never reach a log or an error message; a refusal says why in words.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jwt
import structlog

from controller.adapters.identity import Identities, Role
from controller.core.errors import AuthenticationError, ConfigurationError
from workflows.contracts import Principal

if TYPE_CHECKING:
    from controller.core.settings import Settings

__all__ = ["ACCEPTED_ALGORITHMS", "ClaimNames", "IssuerUnreachableError", "OidcEndpoints", "OidcVerifier"]

log = structlog.get_logger(__name__)

ACCEPTED_ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
"""Asymmetric algorithms only: `none` and HS* are refused whatever the JWKS holds."""

_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_ROLE_NAMES = frozenset(r.value for r in Role)
_HUMAN_ROLES = frozenset(r.value for r in Role if r is not Role.SYSTEM)
"""Roles an issuer's claim may grant: a machine user (system) exists only as a twinops user with a token."""
_SHOWN = 80  # characters of an unverified claim quoted back in a refusal


class IssuerUnreachableError(AuthenticationError):
    """The issuer did not answer, or answered nonsense: nothing could be checked (so nothing is accepted)."""


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) costs a quarter of a second."""
    import httpx

    return httpx.create_ssl_context()


@dataclass(frozen=True)
class ClaimNames:
    """Which claims hold the user's name, role, team and groups."""

    name: str = "preferred_username"
    role: str = "twinops_role"
    team: str = "team"
    groups: str = "groups"


@dataclass(frozen=True)
class OidcEndpoints:
    """Where the browser signs in and where the code is exchanged."""

    authorization: str
    token: str


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class OidcVerifier:
    """Verifies JWTs of one issuer and turns their claims into principals.

    One per process (`ApiContext` holds it); the JWKS and the discovery document are cached on it.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        claims: ClaimNames | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        leeway_seconds: float = 60.0,
        fetch_timeout_seconds: float = 5.0,
        refetch_after_seconds: float = 10.0,
        keys_max_age_seconds: float = 3600.0,
    ) -> None:
        if not issuer:
            raise ConfigurationError("TWINOPS_OIDC_ISSUER is empty")
        if not audience:
            raise ConfigurationError("TWINOPS_OIDC_AUDIENCE must be set with TWINOPS_OIDC_ISSUER (the client id)")
        self.issuer = issuer
        self.audience = audience
        self.claim_names = claims or ClaimNames()
        self.leeway = leeway_seconds
        self.fetch_timeout = fetch_timeout_seconds
        self.refetch_after = refetch_after_seconds
        self.keys_max_age = keys_max_age_seconds
        self._jwks_url = jwks_url
        self._authorize_url = authorize_url
        self._token_url = token_url
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier:
        """The verifier the settings describe (`oidc_issuer` must be set)."""
        if not settings.oidc_issuer:
            raise ConfigurationError("TWINOPS_OIDC_ISSUER is not set")
        return cls(
            settings.oidc_issuer,
            settings.oidc_audience or "",
            jwks_url=settings.oidc_jwks_url,
            claims=ClaimNames(
                name=settings.oidc_name_claim,
                role=settings.oidc_role_claim,
                team=settings.oidc_team_claim,
                groups=settings.oidc_groups_claim,
            ),
            authorize_url=settings.oidc_authorize_url,
            token_url=settings.oidc_token_url,
        )

    # --- the issuer's documents -------------------------------------------------------------

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.fetch_timeout, verify=_tls()) as http:
                # The client's timeout is per phase; wait_for bounds the whole fetch.
                response = await asyncio.wait_for(
                    http.get(url, headers={"Accept": "application/json"}), self.fetch_timeout
                )
            response.raise_for_status()
            data = response.json()
        except TimeoutError:
            raise IssuerUnreachableError(
                f"the issuer's {what} at {url} did not answer within {self.fetch_timeout:g}s"
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise IssuerUnreachableError(f"cannot read the issuer's {what} at {url}: {reason}") from None
        if not isinstance(data, dict):
            raise IssuerUnreachableError(f"the issuer's {what} at {url} is not a JSON object")
        return data

    async def redeem(self, code: str, *, redirect_uri: str, client_id: str, verifier: str, secret: str | None) -> str:
        """The id_token the token endpoint gives for an authorization code (PKCE verifier; Basic auth with `secret`).

        `AuthenticationError` when the issuer refuses the code, `IssuerUnreachableError` when it
        cannot be reached or fails.
        """
        import httpx

        url = (await self.endpoints()).token
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        auth = httpx.BasicAuth(client_id, secret) if secret is not None else None
        try:
            async with httpx.AsyncClient(timeout=self.fetch_timeout, verify=_tls(), auth=auth) as http:
                answer = await asyncio.wait_for(
                    http.post(url, data=form, headers={"Accept": "application/json"}), self.fetch_timeout
                )
        except TimeoutError:
            raise IssuerUnreachableError(
                f"the token endpoint {url} did not answer within {self.fetch_timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise IssuerUnreachableError(f"cannot reach the token endpoint {url}: {reason}") from None
        if answer.status_code >= 500:
            raise IssuerUnreachableError(f"the token endpoint {url} failed (HTTP {answer.status_code})")
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code != 200 or not isinstance(data, dict):
            found = data if isinstance(data, dict) else {}
            # RFC 6749 §5.2 error and error_description: the issuer's words, shortened.
            why = ": ".join(str(found[k])[:200] for k in ("error", "error_description") if found.get(k))
            raise AuthenticationError(f"the issuer refused the code ({why or f'HTTP {answer.status_code}'})")
        id_token = data.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise AuthenticationError("the issuer's answer has no id_token (is the 'openid' scope allowed?)")
        return id_token

    async def discovery(self) -> dict[str, Any]:
        """The issuer's `/.well-known/openid-configuration` (fetched once, then cached)."""
        if self._discovery is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url, "discovery document")
            # OIDC Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
            if document.get("issuer") != self.issuer:
                raise AuthenticationError(
                    f"discovery document at {url} names issuer {_quoted(document.get('issuer'))}, not {self.issuer!r}"
                )
            self._discovery = document
        return self._discovery

    async def _endpoint(self, configured: str | None, field: str) -> str:
        if configured:
            return configured
        value = (await self.discovery()).get(field)
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"the issuer's discovery document has no {field}")
        return value

    async def endpoints(self) -> OidcEndpoints:
        """The authorization and token endpoints: the configured ones, else the discovery document's."""
        return OidcEndpoints(
            authorization=await self._endpoint(self._authorize_url, "authorization_endpoint"),
            token=await self._endpoint(self._token_url, "token_endpoint"),
        )

    async def _fetch_keys(self) -> None:
        url = await self._endpoint(self._jwks_url, "jwks_uri")
        document = await self._get_json(url, "JWKS")
        keys: dict[str | None, jwt.PyJWK] = {}
        for data in document.get("keys") or []:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type we do not use (or cannot read) cannot have signed a token we accept
            if key.algorithm_name in ACCEPTED_ALGORITHMS:
                keys[data.get("kid")] = key
        self._keys = keys
        self._fetched_at = time.monotonic()
        log.info("oidc.jwks_fetched", url=url, keys=len(keys))

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        """The issuer's key named `kid`, fetching the JWKS when stale or when the kid is new to us."""
        async with self._lock:
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at > self.keys_max_age
            unknown = kid not in self._keys and not (kid is None and len(self._keys) == 1)
            may_refetch = self._fetched_at is None or now - self._fetched_at >= self.refetch_after
            if stale or (unknown and may_refetch):
                await self._fetch_keys()
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            key = self._keys.get(kid)
        if key is None:
            if kid is None:
                raise AuthenticationError(f"token names no key (kid) and the issuer has {len(self._keys)} keys")
            raise AuthenticationError(
                f"token signed by an unknown key (kid {_quoted(kid)} is not in the issuer's JWKS)"
            )
        return key

    # --- tokens -----------------------------------------------------------------------------

    async def verify(self, token: str, *, audience: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a valid token; `AuthenticationError` saying why otherwise.

        `audience` defaults to the configured one (the browser sign-in passes its client id);
        `nonce`, when given, must equal the token's `nonce` claim.
        """
        expected_audience = audience or self.audience
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("not a JWT (malformed header)") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            raise AuthenticationError(
                f"token algorithm {_quoted(alg)} is not accepted (only {', '.join(sorted(ACCEPTED_ALGORITHMS))})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("token header's kid is not a string")
        key = await self._key(kid)
        if key.algorithm_name != alg:
            raise AuthenticationError(f"token says {alg} but key {_quoted(kid)} is an {key.algorithm_name} key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=expected_audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(self._refusal(exc, token, expected_audience)) from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise AuthenticationError("id_token nonce does not match this sign-in (replayed or forged)")
        return claims

    def _refusal(self, exc: jwt.PyJWTError, token: str, audience: str) -> str:
        """Why a token failed, in words; unverified claims are quoted (short) only to name what was wrong."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            unverified = {}
        if isinstance(exc, jwt.InvalidSignatureError):
            return "token signature does not verify with the issuer's key"
        if isinstance(exc, jwt.ExpiredSignatureError):
            return "token expired"
        if isinstance(exc, jwt.InvalidIssuedAtError) or (
            isinstance(exc, jwt.ImmatureSignatureError) and "iat" in str(exc)
        ):
            return "token issued in the future (iat)"
        if isinstance(exc, jwt.ImmatureSignatureError):
            return "token not valid yet (nbf in the future)"
        if isinstance(exc, jwt.InvalidAudienceError):
            return f"wrong audience {_quoted(unverified.get('aud'))}: expected {audience!r}"
        if isinstance(exc, jwt.InvalidIssuerError):
            return f"issuer {_quoted(unverified.get('iss'))} is not {self.issuer!r}"
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"token lacks the {exc.claim!r} claim"
        return f"invalid token: {' '.join(str(exc).split()) or type(exc).__name__}"

    async def principal(self, token: str) -> Principal:
        """The principal a valid bearer JWT stands for; `AuthenticationError` saying why otherwise."""
        return self.principal_of(await self.verify(token))

    def principal_of(self, claims: Mapping[str, Any]) -> Principal:
        """The principal verified claims map to (groups count only for approvers and admins)."""
        names = self.claim_names
        name = claims.get(names.name)
        if not isinstance(name, str) or not name.strip():
            name = claims.get("sub")
        if not isinstance(name, str) or not name.strip():
            raise AuthenticationError(f"token names no user (neither {names.name!r} nor 'sub')")
        team = claims.get(names.team)
        return Identities.principal(
            name.strip()[:200],
            _role(claims.get(names.role)),
            team if isinstance(team, str) and team else None,
            _groups(claims.get(names.groups)),
        )


def _role(value: Any) -> Role:
    """The highest known role the claim holds (a string or a list); viewer when none."""
    values: Iterable[Any] = value if isinstance(value, list) else [value]
    known = [Role(v) for v in values if isinstance(v, str) and v in _HUMAN_ROLES]
    return max(known, key=lambda r: r.rank, default=Role.VIEWER)


def _groups(value: Any) -> list[str]:
    """Usable group names from the claim (a list, or one string); role names and odd names dropped."""
    values: Iterable[Any] = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    kept = [g for g in values if isinstance(g, str) and _GROUP.fullmatch(g) and g.lower() not in _ROLE_NAMES]
    dropped = [g for g in values if g not in kept]
    if dropped:
        log.info("oidc.groups_ignored", groups=[_quoted(g) for g in dropped])
    return kept
