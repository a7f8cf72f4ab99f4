"""Who is calling: bearer API tokens, OIDC bearer JWTs, browser sessions; roles; CSRF.

- `Authorization: Bearer tw_...` is a twinops API token (`twinops users add`).
- `Authorization: Basic base64(user:tw_...)`: the same token as a password, for senders that only do
  HTTP Basic (Alertmanager's `basic_auth`); the user name must be the token's.
- `Authorization: Bearer <JWT>` is checked against the OIDC issuer's JWKS when OIDC is configured.
- Otherwise the `twinops_session` cookie names a server-side session (`controller.adapters.sessions`).
  A state-changing request on a session must echo the session's CSRF token, in the
  `X-CSRF-Token` header or a `csrf_token` form field; bearer calls need none (a browser never
  adds an Authorization header on its own).

A bad credential is a 401, never a fall-through to another method. Every refusal is logged with
the principal (when known), the method, the path and the reason; tokens and cookies never are.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from fastapi import Request

from controller.adapters.identity import Identities, Role
from controller.adapters.sessions import Session
from controller.api.context import ApiContext, context_of
from controller.api.problems import Problem
from controller.core.errors import AuthenticationError, NotFoundError
from workflows.contracts import Principal

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Caller",
    "authenticate",
    "caller",
    "client_address",
    "optional_caller",
    "require_role",
    "require_system",
]

log = structlog.get_logger(__name__)

SESSION_COOKIE = "twinops_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANKS = {Role.SYSTEM.value: -1, Role.VIEWER.value: 0, Role.APPROVER.value: 1, Role.ADMIN.value: 2}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the principal and how it proved itself."""

    principal: Principal
    via: Literal["token", "oidc", "session"]
    session: Session | None = None
    session_id: str | None = None

    @property
    def role(self) -> Role:
        """The highest role held (viewer when none; system for a machine, which holds no human role)."""
        ranked = [r for r in self.principal.roles if r in _RANKS]
        best = max(ranked, key=lambda r: _RANKS[r], default=Role.VIEWER.value)
        return Role(best)

    def can(self, role: Role) -> bool:
        """Whether the caller holds `role` or a higher one."""
        return self.role.rank >= role.rank

    @property
    def csrf(self) -> str:
        """The session's CSRF token ('' for bearer callers, who need none)."""
        return self.session.csrf if self.session else ""


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else "unknown"


def _deny(request: Request, status: int, reason: str, principal: str | None = None) -> Problem:
    log.warning(
        "api.denied",
        status=status,
        method=request.method,
        path=request.url.path,
        principal=principal,
        client=client_address(request),
        reason=reason,
    )
    if status == 401:
        return Problem(
            401, "unauthenticated", "Not signed in", reason, headers={"WWW-Authenticate": 'Bearer realm="twinops"'}
        )
    if status == 419:
        return Problem(403, "csrf-failed", "Form expired or forged", reason)
    return Problem(403, "forbidden", "Not allowed", reason)


def _user_principal(identities: Identities, name: str) -> Principal:
    """A token user's principal as the database says now (a disabled user or a changed role applies at once)."""
    try:
        user = identities.get_user(name)
    except NotFoundError:
        raise AuthenticationError(f"user {name!r} no longer exists") from None
    if user.disabled:
        raise AuthenticationError(f"user {name!r} is disabled")
    return Identities.principal(user.name, user.role, user.team, user.groups)


async def authenticate(ctx: ApiContext, request: Request) -> Caller | None:
    """The caller of `request`, None when it presents no credential; raises a 401 problem for a bad one."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "basic" and credential:
            return await _basic(ctx, request, credential)
        if scheme.lower() != "bearer" or not credential:
            raise _deny(request, 401, "Authorization must be 'Bearer <token>' (or HTTP Basic: user name and token)")
        if credential.startswith("tw_") or ctx.oidc is None:
            try:
                principal = await asyncio.to_thread(ctx.identities.resolve, credential)
            except AuthenticationError as exc:
                raise _deny(request, 401, str(exc)) from None
            return Caller(principal, "token")
        try:
            principal = await ctx.oidc.principal(credential)
        except AuthenticationError as exc:
            raise _deny(request, 401, str(exc)) from None
        return Caller(principal, "oidc")
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    session = await asyncio.to_thread(ctx.sessions.get, session_id)
    if session is None:
        raise _deny(request, 401, "session expired or signed out; sign in again")
    principal = session.principal
    if session.source == "token":
        try:
            principal = await asyncio.to_thread(_user_principal, ctx.identities, session.subject)
        except AuthenticationError as exc:
            await asyncio.to_thread(ctx.sessions.end, session_id)
            raise _deny(request, 401, str(exc), session.subject) from None
    caller = Caller(principal, "session", session, session_id)
    if request.method not in _SAFE_METHODS:
        await _check_csrf(request, caller)
    return caller


async def _basic(ctx: ApiContext, request: Request, credential: str) -> Caller:
    """HTTP Basic, for senders that can do nothing else (Alertmanager's `basic_auth`): the password is the
    user's API token, and the user name must be that token's user."""
    try:
        name, sep, token = base64.b64decode(credential, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _deny(request, 401, "HTTP Basic credential is not base64 of 'user:token'") from None
    if not sep or not name or not token.startswith("tw_"):
        raise _deny(request, 401, "HTTP Basic needs the user name and its API token (tw_...) as the password")
    try:
        principal = await asyncio.to_thread(ctx.identities.resolve, token)
    except AuthenticationError as exc:
        raise _deny(request, 401, str(exc)) from None
    if principal.id != name:
        raise _deny(request, 401, f"the token presented is not {name!r}'s")
    return Caller(principal, "token")


async def _check_csrf(request: Request, caller: Caller) -> None:
    assert caller.session is not None
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not caller.session.csrf_matches(presented):
        raise _deny(request, 419, "missing or wrong CSRF token on a state-changing request", caller.principal.id)


async def optional_caller(request: Request) -> Caller | None:
    """Dependency: the caller, or None when no credential was presented."""
    return await authenticate(context_of(request), request)


async def caller(request: Request) -> Caller:
    """Dependency: the authenticated caller (401 otherwise)."""
    found = await authenticate(context_of(request), request)
    if found is None:
        raise _deny(request, 401, "no credential: send 'Authorization: Bearer <token>' or sign in at /login")
    return found


def require_role(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency factory: the caller, who must hold `role` or higher (403 otherwise, logged)."""

    async def dependency(request: Request) -> Caller:
        who = await caller(request)
        if not who.can(role):
            raise _deny(
                request,
                403,
                f"user {who.principal.id!r} ({who.role.value}) needs the {role.value} role for this",
                who.principal.id,
            )
        return who

    dependency.__name__ = f"require_{role.value}"
    return dependency


async def require_system(request: Request) -> Caller:
    """Dependency: a machine caller holding exactly the `system` role (humans, admins too, get a 403)."""
    who = await caller(request)
    if who.role is not Role.SYSTEM:
        raise _deny(
            request,
            403,
            f"user {who.principal.id!r} ({who.role.value}) is not a system user: machines post here "
            "(twinops users add NAME --role system)",
            who.principal.id,
        )
    return who
