"""Users and API tokens, for admins: list, add, issue and revoke tokens, disable and enable.

The same operations as `twinops users`, through the same `Identities`; tokens are shown
once, in the answer that creates them. The store refuses to take away the last admin who
can sign in (409), so the API cannot lock everyone out.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from controller.adapters.identity import Role
from controller.api.auth import Caller, require_role
from controller.api.context import context_of
from controller.api.problems import Problem, problem_responses
from controller.api.v1.models import NewUserAnswer, NewUserBody, RevokedAnswer, TokenAnswer, UserView
from controller.core.errors import AuthenticationError

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])

Admin = Annotated[Caller, Depends(require_role(Role.ADMIN))]
UserName = Annotated[str, Path(min_length=1, max_length=100, description="The user's name.")]


@router.get("", summary="Every user", response_model=list[UserView], responses=problem_responses(401, 403))
async def list_users(request: Request, _: Admin) -> list[UserView]:
    """Users by name, with how many valid tokens each holds (never the tokens)."""
    users = await asyncio.to_thread(context_of(request).identities.list_users)
    return [UserView.of(u) for u in users]


@router.post(
    "",
    summary="Add a user; the answer holds its first API token",
    response_model=NewUserAnswer,
    status_code=201,
    responses=problem_responses(401, 403, 409, 422),
)
async def add_user(request: Request, body: NewUserBody, _: Admin) -> NewUserAnswer:
    """A new user with its role, team and approver groups; its token is shown here only."""
    identities = context_of(request).identities
    try:
        token = await asyncio.to_thread(identities.add_user, body.name, body.role, body.team, body.groups)
    except ValueError as exc:  # the store's own checks of names and groups, should they grow beyond the body's
        raise Problem(422, "invalid-request", "Invalid request", str(exc), invalid=[("body", str(exc))]) from None
    user = await asyncio.to_thread(identities.get_user, body.name)
    return NewUserAnswer(user=UserView.of(user), token=token)


@router.post(
    "/{name}/tokens",
    summary="Issue another API token to a user",
    response_model=TokenAnswer,
    status_code=201,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def issue_token(request: Request, name: UserName, _: Admin) -> TokenAnswer:
    """A new token for an enabled user (its other tokens stay valid)."""
    try:
        token = await asyncio.to_thread(context_of(request).identities.issue_token, name)
    except AuthenticationError as exc:  # the user's state, not the caller's credential: not a 401
        raise Problem(409, "user-disabled", "User disabled", str(exc)) from None
    return TokenAnswer(token=token)


@router.delete(
    "/{name}/tokens",
    summary="Revoke every API token of a user",
    response_model=RevokedAnswer,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def revoke_tokens(request: Request, name: UserName, _: Admin) -> RevokedAnswer:
    """Revoke all of a user's tokens at once (a lost laptop); its browser sessions end too."""
    ctx = context_of(request)
    revoked = await asyncio.to_thread(ctx.identities.revoke_tokens, name)
    await asyncio.to_thread(ctx.sessions.end_all, name)
    return RevokedAnswer(user=name, revoked=revoked)


@router.post(
    "/{name}/disable",
    summary="Disable a user: its tokens and sessions stop working",
    response_model=UserView,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def disable_user(request: Request, name: UserName, _: Admin) -> UserView:
    """Disable a user at once; `enable` lets its existing tokens work again."""
    ctx = context_of(request)
    await asyncio.to_thread(ctx.identities.set_disabled, name, True)
    await asyncio.to_thread(ctx.sessions.end_all, name)
    return UserView.of(await asyncio.to_thread(ctx.identities.get_user, name))


@router.post(
    "/{name}/enable",
    summary="Enable a disabled user again",
    response_model=UserView,
    responses=problem_responses(401, 403, 404, 422),
)
async def enable_user(request: Request, name: UserName, _: Admin) -> UserView:
    """Enable a user; tokens it held before being disabled work again unless they were revoked."""
    ctx = context_of(request)
    await asyncio.to_thread(ctx.identities.set_disabled, name, False)
    return UserView.of(await asyncio.to_thread(ctx.identities.get_user, name))
