"""`twinops users`: add users, set their groups, list them, issue and revoke their API tokens.

Only an admin manages users, authenticated by its API token in TWINOPS_TOKEN; a user
may issue a token for itself (rotation). The one exception is the bootstrap: on a
database with no user at all, `twinops users add NAME --role admin` works without a
token, once. `users list` needs no token (it shows no secret).

A token goes to stdout alone (so `TOKEN=$(twinops users add ...)` works); everything
else, including the warning that it is shown once, goes to stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from controller.adapters.identity import Identities, Role, require
from controller.cli._common import console, err_console, fail, print_json, settings_of
from controller.core.db import create_engine, migrate
from controller.core.errors import AuthenticationError, TwinopsError
from controller.core.settings import Settings
from workflows import Principal

app = typer.Typer(no_args_is_help=True, help="Manage users (viewer, approver, admin) and their API tokens.")

_ONCE = "this token is shown once and cannot be recovered; store it now (twinops reads it from TWINOPS_TOKEN)"
_GROUP_HELP = "approver group, as in the approval policy's groups_by_action (repeatable)"
_VIEWER_GROUPS = "a viewer's groups grant nothing; they count once the user is an approver or admin"


class _Session:
    """The identity store and the settings of one command."""

    def __init__(self, identities: Identities, settings: Settings) -> None:
        self.identities = identities
        self.settings = settings

    def caller(self, action: str) -> Principal:
        """The principal of TWINOPS_TOKEN; `AuthenticationError` when unset or not valid."""
        if self.settings.token is None:
            raise AuthenticationError(f"set TWINOPS_TOKEN to an admin's API token {action}")
        return self.identities.resolve(self.settings.token.get_secret_value())

    def admin(self, action: str) -> Principal:
        """The caller, who must be an admin."""
        principal = self.caller(action)
        require(principal, Role.ADMIN, action)
        return principal


@contextmanager
def _session(ctx: typer.Context) -> Iterator[_Session]:
    settings = settings_of(ctx)
    engine = create_engine(settings.resolved_database_url)
    try:
        migrate(engine)
        yield _Session(Identities(engine), settings)
    except (TwinopsError, ValueError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def _print_token(token: str) -> None:
    typer.echo(token)
    err_console.print(f"[bold yellow]warning:[/] {_ONCE}", highlight=False)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="user name (letters, digits, . _ @ -)")],
    role: Annotated[Role, typer.Option("--role", help="what the user may do")] = Role.VIEWER,
    team: Annotated[str | None, typer.Option("--team", help="owning team, as in the twin's node tags")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help=_GROUP_HELP)] = None,
) -> None:
    """Create a user and print its first API token (once). Needs an admin's TWINOPS_TOKEN.

    On a database with no users yet, the first admin is added without a token:
    `twinops users add NAME --role admin`.
    """
    groups = group or []
    with _session(ctx) as session:
        identities = session.identities
        if session.settings.token is None and identities.is_empty():
            if role is not Role.ADMIN:
                raise AuthenticationError(
                    f"no users yet: add the first admin before {name!r} (twinops users add NAME --role admin), "
                    "then set TWINOPS_TOKEN to its token"
                )
            token = identities.bootstrap_admin(name, team, groups)
        else:
            session.admin("to add users")
            token = identities.add_user(name, role, team, groups)
    shown = ", ".join(sorted(set(groups))) or "-"
    err_console.print(f"created user {name!r}: {role.value}, team {team or '-'}, groups {shown}", highlight=False)
    if groups and role is Role.VIEWER:
        err_console.print(f"[bold yellow]warning:[/] {_VIEWER_GROUPS}", highlight=False)
    _print_token(token)


@app.command("groups")
def groups_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="user name")],
    add: Annotated[list[str] | None, typer.Option("--add", help="group to give (repeatable)")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="group to take away (repeatable)")] = None,
) -> None:
    """Give or take away a user's approver groups; prints the groups it then holds. Needs an admin's token."""
    if not add and not remove:
        fail("nothing to change: give --add GROUP or --remove GROUP (twinops users list shows the groups)")
    with _session(ctx) as session:
        session.admin("to change groups")
        held = session.identities.change_groups(name, add=add or [], remove=remove or [])
        role = session.identities.get_user(name).role
    err_console.print(f"groups of {name!r}: {', '.join(held) or 'none'}", highlight=False)
    if held and role is Role.VIEWER:
        err_console.print(f"[bold yellow]warning:[/] {_VIEWER_GROUPS}", highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False
) -> None:
    """List users with their role, team and tokens (never the tokens themselves)."""
    with _session(ctx) as session:
        found = session.identities.list_users()
    if as_json:
        print_json(
            [
                {
                    "name": u.name,
                    "role": u.role.value,
                    "team": u.team,
                    "groups": list(u.groups),
                    "disabled": u.disabled,
                    "active_tokens": u.active_tokens,
                    "created_at": u.created_at.isoformat(),
                    "last_used_at": u.last_used_at.isoformat() if u.last_used_at else None,
                }
                for u in found
            ]
        )
        return
    table = Table("name", "role", "team", "groups", "tokens", "last used", "created", "state")
    for u in found:
        table.add_row(
            u.name,
            u.role.value,
            u.team or "-",
            ", ".join(u.groups) or "-",
            str(u.active_tokens),
            u.last_used_at.strftime("%Y-%m-%d %H:%M") if u.last_used_at else "never",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
            "disabled" if u.disabled else "active",
        )
    console.print(table)


@app.command("token")
def token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="user name")],
    revoke_others: Annotated[
        bool, typer.Option("--revoke-others", help="revoke the user's other tokens (rotation)")
    ] = False,
) -> None:
    """Issue a new API token for a user and print it (once). Admins for anyone; any user for itself."""
    with _session(ctx) as session:
        caller = session.caller("to issue tokens (or your own token, to rotate it)")
        if caller.id != name:
            require(caller, Role.ADMIN, "to issue tokens for other users")
        issued = session.identities.issue_token(name, revoke_others=revoke_others)
    if revoke_others:
        err_console.print(f"revoked the other tokens of {name!r}", highlight=False)
    _print_token(issued)


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Revoke every API token of a user. Needs an admin's token."""
    with _session(ctx) as session:
        session.admin("to revoke tokens")
        count = session.identities.revoke_tokens(name)
    err_console.print(f"revoked {count} token{'s' if count != 1 else ''} of {name!r}", highlight=False)


@app.command("disable")
def disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Disable a user: its tokens stop working until it is enabled again. Needs an admin's token."""
    with _session(ctx) as session:
        session.admin("to disable users")
        session.identities.set_disabled(name, True)
    err_console.print(f"disabled {name!r}", highlight=False)


@app.command("enable")
def enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Enable a disabled user again (tokens revoked meanwhile stay revoked). Needs an admin's token."""
    with _session(ctx) as session:
        session.admin("to enable users")
        session.identities.set_disabled(name, False)
    err_console.print(f"enabled {name!r}", highlight=False)
