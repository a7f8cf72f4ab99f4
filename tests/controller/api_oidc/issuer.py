"""A stand-in OIDC issuer over real HTTP: discovery, JWKS, an authorize endpoint and a token endpoint.

Keys are made here (RSA, P-256 and Ed25519); `mint` signs any claims with any of them, or with a
key the issuer does not publish. The authorize endpoint signs in `signs_in` at once and redirects
back with a code; the token endpoint checks the code, the redirect URI, the client id, the client
secret (when one is set) and the PKCE verifier (S256), then answers an id_token signed by the
published RSA key with the sign-in's nonce. It counts JWKS fetches, which the caching tests read.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

AUDIENCE = "twinops"

_ALGORITHMS = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}


@functools.cache
def new_key(kind: str, name: str = "") -> SigningKey:
    """A private key: RSA (2048), EC (P-256) or OKP (Ed25519); one per (kind, name) for the session (RSA is slow)."""
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key: SigningKey, kid: str) -> dict[str, Any]:
    """The public half of `key` as a JWK with `kid` and `use: sig`."""
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig"}


def _part(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A JWT with `header` and no signature (what `alg: none` looks like)."""
    return f"{_part(header)}.{_part(claims)}."


def hs256_token(claims: dict[str, Any], secret: bytes, kid: str = "rsa-1") -> str:
    """A JWT signed with HMAC-SHA256 under `secret`, naming key `kid` (the algorithm-confusion attack)."""
    signing = f"{_part({'alg': 'HS256', 'kid': kid})}.{_part(claims)}"
    signature = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


class Issuer:
    """An OIDC issuer on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, *, client_secret: str | None = None) -> None:
        self.keys: dict[str, SigningKey] = {
            "rsa-1": new_key("RSA", "rsa-1"),
            "ec-1": new_key("EC", "ec-1"),
            "ed-1": new_key("OKP", "ed-1"),
        }
        self.published: list[str] = list(self.keys)
        """The kids the JWKS lists (a test rotates keys by changing it)."""
        self.client_secret = client_secret
        self.signs_in: dict[str, Any] = {"sub": "u-1", "preferred_username": "olivia", "twinops_role": "approver"}
        """The claims of whoever signs in at the authorize endpoint."""
        self.fetches: Counter[str] = Counter()
        self.token_requests: list[dict[str, str]] = []
        self.discovery_issuer: str | None = None
        """What the discovery document calls the issuer (None: the real URL)."""
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval: shutdown() waits for the loop's next look.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        """The issuer URL (what `iss` holds)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Issuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_key(self, kid: str, kind: str = "RSA", *, publish: bool = True) -> None:
        """Make another key, published in the JWKS or kept private."""
        self.keys[kid] = new_key(kind, kid)
        if publish:
            self.published.append(kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a valid token for `olivia` (approver, team edge, group sre), with `overrides`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "u-1",
            "preferred_username": "olivia",
            "twinops_role": "approver",
            "team": "edge",
            "groups": ["sre"],
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, claims: dict[str, Any] | None = None, *, kid: str = "rsa-1") -> str:
        """A JWT of `claims` (default `claims()`) signed by key `kid` with its algorithm."""
        key = self.keys[kid]
        algorithm = _ALGORITHMS[public_jwk(key, kid)["kty"]]
        return jwt.encode(claims or self.claims(), key, algorithm=algorithm, headers={"kid": kid})

    def jwks(self) -> dict[str, Any]:
        """The published keys."""
        return {"keys": [public_jwk(self.keys[kid], kid) for kid in self.published]}

    def _authorize(self, query: dict[str, str]) -> str:
        """Sign in `signs_in` at once; where to send the browser back to (with a code and the state)."""
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = query
        back = {"code": code, "state": query.get("state", "")}
        return query["redirect_uri"] + "?" + urlencode(back)

    def _token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        with self._lock:
            asked = self._codes.pop(form.get("code", ""), None)
        if asked is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if self.client_secret is not None:
            expected = "Basic " + base64.b64encode(f"{asked['client_id']}:{self.client_secret}".encode()).decode()
            if authorization != expected:
                return 401, {"error": "invalid_client"}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if (
            challenge.rstrip(b"=").decode() != asked.get("code_challenge")
            or asked.get("code_challenge_method") != "S256"
        ):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        if form.get("redirect_uri") != asked.get("redirect_uri") or form.get("client_id") != asked.get("client_id"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri or client_id differs"}
        claims = self.claims(aud=asked["client_id"], nonce=asked.get("nonce"), groups=None, team=None)
        claims.update(self.signs_in)
        return 200, {"id_token": self.mint(claims), "access_token": "opaque", "token_type": "Bearer"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                issuer.fetches[parts.path] += 1
                if parts.path == "/.well-known/openid-configuration":
                    self._send(
                        200,
                        {
                            "issuer": issuer.discovery_issuer or issuer.url,
                            "authorization_endpoint": issuer.url + "/authorize",
                            "token_endpoint": issuer.url + "/token",
                            "jwks_uri": issuer.url + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
                        },
                    )
                elif parts.path == "/jwks":
                    self._send(200, issuer.jwks())
                elif parts.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    self._send(302, {}, {"Location": issuer._authorize(query)})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if urlsplit(self.path).path != "/token":
                    self._send(404, {"error": "not found"})
                    return
                status, answer = issuer._token(form, self.headers.get("Authorization"))
                self._send(status, answer)

        return Handler
