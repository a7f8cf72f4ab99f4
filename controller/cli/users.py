"""`twinops users`: add users, list them, issue and revoke their API tokens.

A token goes to stdout alone (so `TOKEN=$(twinops users add ...)` works); everything
else, including the warning that it is shown once, goes to stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from controller.cli._common import console, err_console, fail, print_json
from controller.db import create_engine, migrate
from controller.errors import TwinopsError
from controller.identity import Identities, Role
from controller.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Manage users (viewer, approver, admin) and their API tokens.")

_ONCE = "this token is shown once and cannot be recovered; store it now (twinops reads it from TWINOPS_TOKEN)"


@contextmanager
def _identities() -> Iterator[Identities]:
    settings = load_settings()
    engine = create_engine(settings.resolved_database_url)
    try:
        migrate(engine)
        yield Identities(engine)
    except (TwinopsError, ValueError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def _print_token(token: str) -> None:
    typer.echo(token)
    err_console.print(f"[bold yellow]warning:[/] {_ONCE}", highlight=False)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="user name (letters, digits, . _ @ -)")],
    role: Annotated[Role, typer.Option("--role", help="what the user may do")] = Role.VIEWER,
    team: Annotated[str | None, typer.Option("--team", help="owning team, as in the twin's node tags")] = None,
) -> None:
    """Create a user and print its first API token (once)."""
    with _identities() as identities:
        token = identities.add_user(name, role, team)
    err_console.print(f"created user {name!r}: {role.value}, team {team or '-'}", highlight=False)
    _print_token(token)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List users with their role, team and tokens (never the tokens themselves)."""
    with _identities() as identities:
        found = identities.list_users()
    if as_json:
        print_json(
            [
                {
                    "name": u.name,
                    "role": u.role.value,
                    "team": u.team,
                    "disabled": u.disabled,
                    "active_tokens": u.active_tokens,
                    "created_at": u.created_at.isoformat(),
                    "last_used_at": u.last_used_at.isoformat() if u.last_used_at else None,
                }
                for u in found
            ]
        )
        return
    table = Table("name", "role", "team", "tokens", "last used", "created", "state")
    for u in found:
        table.add_row(
            u.name,
            u.role.value,
            u.team or "-",
            str(u.active_tokens),
            u.last_used_at.strftime("%Y-%m-%d %H:%M") if u.last_used_at else "never",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
            "disabled" if u.disabled else "active",
        )
    console.print(table)


@app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="user name")],
    revoke_others: Annotated[
        bool, typer.Option("--revoke-others", help="revoke the user's other tokens (rotation)")
    ] = False,
) -> None:
    """Issue a new API token for a user and print it (once)."""
    with _identities() as identities:
        issued = identities.issue_token(name, revoke_others=revoke_others)
    if revoke_others:
        err_console.print(f"revoked the other tokens of {name!r}", highlight=False)
    _print_token(issued)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Revoke every API token of a user."""
    with _identities() as identities:
        count = identities.revoke_tokens(name)
    err_console.print(f"revoked {count} token{'s' if count != 1 else ''} of {name!r}", highlight=False)


@app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Disable a user: its tokens stop working until it is enabled again."""
    with _identities() as identities:
        identities.set_disabled(name, True)
    err_console.print(f"disabled {name!r}", highlight=False)


@app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Enable a disabled user again (tokens revoked meanwhile stay revoked)."""
    with _identities() as identities:
        identities.set_disabled(name, False)
    err_console.print(f"enabled {name!r}", highlight=False)
