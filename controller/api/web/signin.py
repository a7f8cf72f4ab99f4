"""Signing in to the pages with an API token, and signing out.

A good token opens a server-side session (`controller.adapters.sessions`): the browser gets
only a random cookie, HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it) and Secure behind TLS. Failed attempts count per client address in the sign-in
limiter; over the limit, sign-in answers 429 with Retry-After before looking at the token.
The sign-in form itself carries a one-time value that must match a cookie set with the
form, so another site cannot sign a browser in as someone else (login CSRF).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from controller.api.auth import CSRF_FIELD, SESSION_COOKIE, authenticate, client_address
from controller.api.context import context_of
from controller.api.problems import Problem
from controller.api.web.render import PAGE_TAG, PageCaller, render, safe_next
from controller.core.errors import AuthenticationError

__all__ = ["SIGNIN_COOKIE", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

SIGNIN_COOKIE = "twinops_signin"
"""The sign-in form's double-submit value (not a session: it signs nobody in)."""
_SIGNIN_COOKIE_SECONDS = 3600
_MAX_TOKEN_CHARS = 512


def _secure(request: Request) -> bool:
    setting = context_of(request).settings.cookie_secure
    return setting if setting is not None else request.url.scheme == "https"


def _login_page(
    request: Request, *, next_path: str, error: str = "", status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The sign-in form with a fresh double-submit value (set in its cookie and in the form)."""
    form_value = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html.j2",
        {"next": next_path, "error": error, "signin_csrf": form_value},
        status=status,
        headers=headers,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        form_value,
        max_age=_SIGNIN_COOKIE_SECONDS,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in page (a signed-in browser goes straight on; an expired session just signs in again)."""
    try:
        who = await authenticate(context_of(request), request)
    except Problem:
        who = None
    if who is not None and who.via == "session":
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token; on success open a session and go on to `next` (a path on this site only)."""
    ctx = context_of(request)
    form = await request.form()
    token = form.get("token")
    next_path = safe_next(str(form.get("next") or "/"))
    presented = form.get(CSRF_FIELD)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not (isinstance(presented, str) and expected and hmac.compare_digest(presented, expected)):
        log.warning("web.signin_refused", client=client_address(request), reason="sign-in form expired or forged")
        return _login_page(
            request, next_path=next_path, error="The sign-in form expired. Please try again.", status=403
        )
    client = client_address(request)
    wait = ctx.limiter.retry_after(client)
    if wait is not None:
        log.warning("web.signin_refused", client=client, reason="too many failed sign-ins")
        seconds = int(wait + 0.999)
        return _login_page(
            request,
            next_path=next_path,
            error=f"Too many failed sign-ins from your address. Try again in {seconds} s.",
            status=429,
            headers={"Retry-After": str(seconds)},
        )
    if not isinstance(token, str) or not token.strip() or len(token) > _MAX_TOKEN_CHARS:
        ctx.limiter.failed(client)
        return _login_page(request, next_path=next_path, error="Enter your API token.", status=401)
    try:
        principal = await asyncio.to_thread(ctx.identities.resolve, token.strip())
    except AuthenticationError as exc:
        ctx.limiter.failed(client)
        log.warning("web.signin_failed", client=client, reason=str(exc))
        return _login_page(request, next_path=next_path, error="That token was not accepted.", status=401)
    ctx.limiter.succeeded(client)
    cookie, _ = await asyncio.to_thread(ctx.sessions.create, principal, source="token", ttl=ctx.session_ttl)
    log.info("web.signed_in", principal=principal.id, via="token", client=client)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(ctx.session_ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, who: PageCaller) -> Response:
    """End the session (the CSRF token was checked by `page_caller`) and go back to the sign-in page."""
    ctx = context_of(request)
    if who.session_id:
        await asyncio.to_thread(ctx.sessions.end, who.session_id)
        log.info("web.signed_out", principal=who.principal.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response
