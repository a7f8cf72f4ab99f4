"""Browser sign-in with OIDC (authorization code flow with PKCE) against the configured issuer.

`GET /login/oidc?next=/path` sends the browser to the issuer's authorization endpoint with a
fresh `state`, `nonce` and PKCE challenge (S256). What the callback needs to finish (state,
verifier, nonce, where to go next) rides in a short-lived cookie scoped to /login/oidc: HttpOnly,
SameSite=Lax so the issuer's redirect back carries it, and holding no credential (the verifier
is worthless without a code the issuer gives only to the browser that signed in).

`GET /login/oidc/callback?code&state` checks that `state` equals the cookie's (constant time;
this binds the answer to the browser that started the sign-in, which defeats login CSRF),
exchanges the code with the verifier at the token endpoint, verifies the id_token with
`OidcVerifier` (issuer, audience = client id, expiry, signature, nonce), opens a server-side
session and sets the `twinops_session` cookie with the same flags as the token sign-in.

The callback answers with a short page that moves on to `next`, not with a redirect: the
browser reached the callback from the issuer's site, and a redirect keeps that cross-site
origin, so a SameSite=Strict cookie would not be sent on the first page after sign-in
(checked in Chromium). A navigation started by our own page is same-site.

Failures (state mismatch, an error from the issuer, a refused exchange, a token that does not
verify) answer a readable page, count against the client's sign-in limit and are logged with
the reason; codes, tokens, verifiers and cookies never are.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import secrets
import time
from datetime import timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from controller.adapters.oidc import IssuerUnreachableError, OidcVerifier
from controller.api.auth import SESSION_COOKIE, client_address
from controller.api.context import ApiContext, context_of
from controller.core.errors import AuthenticationError
from controller.core.settings import Settings
from workflows.contracts import Principal

__all__ = ["FLOW_COOKIE", "router", "set_session_cookie"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

FLOW_COOKIE: Final = "twinops_oidc"
"""The sign-in-in-progress cookie (state, PKCE verifier, nonce, next)."""
_FLOW_PATH: Final = "/login/oidc"
_FLOW_SECONDS: Final = 600
_SCOPE: Final = "openid profile"


class _SignInError(Exception):
    """A sign-in that cannot finish; `status` and `message` are what the page shows."""

    def __init__(self, status: int, message: str, *, counts: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.counts = counts


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _local(path: str | None) -> str:
    """`path` when it is a path on this site, else "/" (no open redirect through `next`)."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")) or any(c in path for c in "\r\n\\"):
        return "/"
    return path


def _secure(request: Request, settings: Settings) -> bool:
    return settings.cookie_secure if settings.cookie_secure is not None else request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, settings: Settings, value: str, ttl: timedelta) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Secure behind TLS (or as configured), for `ttl`."""
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(ttl.total_seconds()),
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def _page(
    status: int,
    title: str,
    message: str,
    *,
    link: tuple[str, str] = ("/login", "Back to sign-in"),
    refresh: bool = False,
) -> HTMLResponse:
    """A small self-contained page (no script, no external asset); `refresh` moves on to the link at once."""
    href, label = link
    target = html.escape(href, quote=True)
    moves_on = f'<meta http-equiv="refresh" content="0;url={target}">' if refresh else ""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{moves_on}'
        f"<title>{html.escape(title)} · twinops</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#111">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        f'<p><a href="{target}">{html.escape(label)}</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _verifier(ctx: ApiContext) -> OidcVerifier:
    if ctx.oidc is None:
        raise _SignInError(404, "OIDC sign-in is not configured here (TWINOPS_OIDC_ISSUER is unset).", counts=False)
    return ctx.oidc


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/login/oidc", name="oidc_login")
async def login(request: Request, next_: Annotated[str, Query(alias="next")] = "/") -> Response:
    """Start the sign-in: send the browser to the issuer with state, nonce and a PKCE challenge."""
    ctx = context_of(request)
    try:
        verifier = _verifier(ctx)
        endpoints = await verifier.endpoints()
    except _SignInError as exc:
        return _page(exc.status, "Sign-in unavailable", exc.message)
    except AuthenticationError as exc:  # unreachable, or a discovery document we cannot use
        log.warning("oidc.signin_unavailable", reason=str(exc), client=client_address(request))
        return _page(502, "Sign-in unavailable", f"The identity provider cannot be reached: {exc}")
    flow: dict[str, str | int] = {
        "state": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
        "nonce": secrets.token_urlsafe(24),
        "next": _local(next_),
        "at": int(time.time()),
    }
    challenge = _b64url(hashlib.sha256(str(flow["verifier"]).encode("ascii")).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": _client_id(ctx.settings),
            "redirect_uri": _callback_url(request),
            "scope": _SCOPE,
            "state": flow["state"],
            "nonce": flow["nonce"],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in endpoints.authorization else "?"
    response = RedirectResponse(endpoints.authorization + separator + query, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        FLOW_COOKIE,
        _b64url(json.dumps(flow, separators=(",", ":")).encode()),
        max_age=_FLOW_SECONDS,
        path=_FLOW_PATH,
        secure=_secure(request, ctx.settings),
        httponly=True,
        samesite="lax",
    )
    return response


def _client_id(settings: Settings) -> str:
    return settings.oidc_client_id or settings.oidc_audience or ""


def _flow_of(request: Request) -> dict[str, Any]:
    raw = request.cookies.get(FLOW_COOKIE)
    if not raw:
        raise _SignInError(
            400, "This sign-in was not started in this browser, or it took longer than 10 minutes. Start again."
        )
    try:
        flow = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        fields = (flow["state"], flow["verifier"], flow["nonce"], flow["next"], flow["at"])
    except (ValueError, TypeError, KeyError):
        raise _SignInError(400, "The sign-in cookie is damaged. Start again.") from None
    if not all(isinstance(f, str) for f in fields[:4]) or not isinstance(fields[4], int):
        raise _SignInError(400, "The sign-in cookie is damaged. Start again.")
    if time.time() - fields[4] > _FLOW_SECONDS:
        raise _SignInError(400, "This sign-in took longer than 10 minutes. Start again.")
    return dict(flow)


@router.get("/login/oidc/callback", name="oidc_callback")
async def callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Finish the sign-in: check state, exchange the code, verify the id_token, open a session."""
    ctx = context_of(request)
    client = client_address(request)
    wait = ctx.limiter.retry_after(client)
    if wait is not None:
        log.warning("oidc.signin_refused", reason="too many failed sign-ins", client=client)
        page = _page(429, "Too many failed sign-ins", f"Try again in {int(wait + 0.999)} seconds.")
        page.headers["Retry-After"] = str(int(wait + 0.999))
        return page
    try:
        principal, goto = await _finish(ctx, request, code, state, error, error_description)
    except _SignInError as exc:
        if exc.counts:
            ctx.limiter.failed(client)
        log.warning("oidc.signin_failed", status=exc.status, reason=exc.message, client=client)
        page = _page(exc.status, "Sign-in failed", exc.message)
        page.delete_cookie(FLOW_COOKIE, path=_FLOW_PATH)
        return page
    ctx.limiter.succeeded(client)
    cookie, session = await asyncio.to_thread(ctx.sessions.create, principal, source="oidc", ttl=ctx.session_ttl)
    log.info("oidc.signed_in", principal=principal.id, roles=principal.roles, client=client)
    # A navigation our own page starts is same-site (see the module docstring): the Strict cookie goes with it.
    page = _page(200, "Signed in", f"Signed in as {principal.id}. Continuing…", link=(goto, "Continue"), refresh=True)
    page.delete_cookie(FLOW_COOKIE, path=_FLOW_PATH)
    set_session_cookie(page, request, ctx.settings, cookie, session.expires_at - session.created_at)
    return page


async def _finish(
    ctx: ApiContext,
    request: Request,
    code: str | None,
    state: str | None,
    error: str | None,
    error_description: str | None,
) -> tuple[Principal, str]:
    verifier = _verifier(ctx)
    if error:
        described = f": {error_description[:200]}" if error_description else ""
        raise _SignInError(401, f"The identity provider refused the sign-in ({error[:100]}{described}).")
    flow = _flow_of(request)
    if not state or not hmac.compare_digest(state.encode(), str(flow["state"]).encode()):
        raise _SignInError(400, "The sign-in answer does not belong to this browser's sign-in (state mismatch).")
    if not code:
        raise _SignInError(400, "The identity provider sent no code.")
    settings = ctx.settings
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    try:
        id_token = await verifier.redeem(
            code,
            redirect_uri=_callback_url(request),
            client_id=_client_id(settings),
            verifier=str(flow["verifier"]),
            secret=secret,
        )
    except IssuerUnreachableError as exc:
        raise _SignInError(502, f"The identity provider cannot be reached: {exc}.", counts=False) from None
    except AuthenticationError as exc:
        raise _SignInError(401, f"Sign-in refused: {exc}.") from None
    try:
        claims = await verifier.verify(id_token, audience=_client_id(settings), nonce=str(flow["nonce"]))
        principal = verifier.principal_of(claims)
    except AuthenticationError as exc:
        raise _SignInError(401, f"The identity provider's id_token was refused: {exc}.") from None
    return principal, _local(str(flow["next"]))
