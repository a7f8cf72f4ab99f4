"""The users page (admins only): list users, add one (its token shown once), revoke tokens, disable and enable.

Revoking a user's tokens or disabling it also ends its browser sessions: a leaked token
that is revoked must not live on as a session opened with it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from controller.adapters.identity import Role
from controller.api.auth import Caller
from controller.api.context import context_of
from controller.api.web.render import PAGE_TAG, PageCaller, render
from controller.core.errors import AuthorizationError, NotFoundError, TwinopsError

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

ROLES = tuple(r.value for r in Role)
_GROUP_SPLIT = re.compile(r"[,\s]+")


async def admin_caller(request: Request, who: PageCaller) -> Caller:
    """The signed-in caller, who must be an admin (403 page otherwise, logged)."""
    if not who.can(Role.ADMIN):
        log.warning("web.denied", principal=who.principal.id, path=request.url.path, reason="needs the admin role")
        raise AuthorizationError(f"user {who.principal.id!r} ({who.role.value}) needs the admin role for this")
    return who


AdminCaller = Annotated[Caller, Depends(admin_caller)]


async def _page(
    request: Request,
    who: Caller,
    *,
    message: str = "",
    error: str = "",
    new_token: tuple[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    users = await asyncio.to_thread(context_of(request).identities.list_users)
    return render(
        request,
        "users.html.j2",
        {
            "users": users,
            "roles": ROLES,
            "message": message,
            "error": error,
            "new_token": new_token,
            "typed": typed or {},
        },
        caller=who,
        status=status,
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, who: AdminCaller) -> Response:
    """Every user with its role, team, groups, tokens and state."""
    return await _page(request, who)


@router.post("/users", response_class=HTMLResponse)
async def add_user(request: Request, who: AdminCaller) -> Response:
    """Add a user; its first token is shown on the answer and never again."""
    form = await request.form()
    typed = {k: str(form.get(k) or "").strip() for k in ("name", "role", "team", "groups")}
    if typed["role"] not in ROLES:
        return await _page(request, who, error=f"role must be one of {', '.join(ROLES)}", typed=typed, status=422)
    groups = [g for g in _GROUP_SPLIT.split(typed["groups"]) if g]
    ids = context_of(request).identities
    try:
        token = await asyncio.to_thread(ids.add_user, typed["name"], typed["role"], typed["team"] or None, groups)
    except (TwinopsError, ValueError) as exc:
        status = 422 if isinstance(exc, ValueError) else 409
        return await _page(request, who, error=str(exc), typed=typed, status=status)
    log.info("web.user_added", by=who.principal.id, user=typed["name"], role=typed["role"])
    return await _page(request, who, message=f"added user {typed['name']}", new_token=(typed["name"], token))


async def _act(request: Request, who: Caller, name: str, action: str) -> HTMLResponse:
    ctx = context_of(request)
    ids = ctx.identities
    try:
        if action == "token":
            token = await asyncio.to_thread(ids.issue_token, name)
            log.info("web.token_issued", by=who.principal.id, user=name)
            return await _page(request, who, message=f"new token for {name}", new_token=(name, token))
        # Revoking and disabling end the user's sessions themselves (Identities does it in the same
        # transaction); count them first so the page can say how many ended.
        live = await asyncio.to_thread(ctx.sessions.count, name) if action in ("revoke", "disable") else 0
        if action == "revoke":
            count = await asyncio.to_thread(ids.revoke_tokens, name)
            message = f"revoked {count} token(s) of {name}"
        else:
            await asyncio.to_thread(ids.set_disabled, name, action == "disable")
            message = f"{action}d {name}"
        if action in ("revoke", "disable"):
            ended = live - await asyncio.to_thread(ctx.sessions.count, name)
            ended += await asyncio.to_thread(ctx.sessions.end_all, name)  # SSO sessions of the same name
            message += f"; ended {ended} session(s)" if ended else ""
    except (TwinopsError, ValueError) as exc:
        status = 404 if isinstance(exc, NotFoundError) else 422 if isinstance(exc, ValueError) else 409
        return await _page(request, who, error=str(exc), status=status)
    log.info("web.user_changed", by=who.principal.id, user=name, action=action)
    return await _page(request, who, message=message)


@router.post("/users/{name}/token", response_class=HTMLResponse)
async def issue_token(request: Request, name: str, who: AdminCaller) -> Response:
    """A new token for a user (shown once; its other tokens stay valid)."""
    return await _act(request, who, name, "token")


@router.post("/users/{name}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, name: str, who: AdminCaller) -> Response:
    """Revoke every token of a user and end its sessions."""
    return await _act(request, who, name, "revoke")


@router.post("/users/{name}/disable", response_class=HTMLResponse)
async def disable(request: Request, name: str, who: AdminCaller) -> Response:
    """Disable a user: its tokens stop working and its sessions end."""
    return await _act(request, who, name, "disable")


@router.post("/users/{name}/enable", response_class=HTMLResponse)
async def enable(request: Request, name: str, who: AdminCaller) -> Response:
    """Enable a disabled user again."""
    return await _act(request, who, name, "enable")
