"""`twinops users`: only an admin manages users (bootstrap of the first admin aside); groups; list."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner, Result

from controller.adapters.identity import TOKEN_PREFIX, Identities
from controller.cli import app as cli_app
from controller.core.db import create_engine, scratch_postgres_schema
from controller.core.errors import AuthenticationError
from controller.core.settings import Settings
from tests.controller.adapters.audit.conftest import PG_URL, require_postgres
from workflows import Principal

Run = Callable[..., Result]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield Settings(home=tmp_path).resolved_database_url
        return
    require_postgres()
    with scratch_postgres_schema(PG_URL, "twinops_users_test") as make:
        with make().connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`twinops ARGS...` as the holder of `token` (None: no TWINOPS_TOKEN at all)."""
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    monkeypatch.setenv("TWINOPS_DATABASE_URL", database_url)
    monkeypatch.delenv("TWINOPS_TOKEN", raising=False)
    runner = CliRunner()

    def invoke(*args: str, token: str | None = None) -> Result:
        return runner.invoke(cli_app, list(args), env={"TWINOPS_TOKEN": token})

    return invoke


@pytest.fixture
def ids(database_url: str) -> Iterator[Identities]:
    engine: Engine = create_engine(database_url)
    yield Identities(engine)
    engine.dispose()


def refused(result: Result, *needles: str) -> None:
    """Exit 2 with one line on stderr that says what is wrong."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""  # no token printed


def added(result: Result) -> str:
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith(TOKEN_PREFIX)
    return token


def test_bootstrap_once_then_only_an_admin_adds_users(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin", "--group", "sre"))
    assert ids.resolve(root) == Principal(id="root", roles=["admin", "approver", "sre"])

    # The bootstrap was the one time: from now on every add needs an admin's token.
    refused(run("users", "add", "root2", "--role", "admin"), "TWINOPS_TOKEN", "admin's API token to add users")
    refused(run("users", "add", "vic"), "TWINOPS_TOKEN")

    vic = added(run("users", "add", "vic", token=root))
    refused(
        run("users", "add", "eve", "--role", "admin", token=vic), "'vic' (viewer) needs the admin role to add users"
    )
    amy = added(run("users", "add", "amy", "--role", "approver", "--group", "sre", token=root))
    refused(run("users", "add", "eve", token=amy), "needs the admin role to add users")
    refused(run("users", "add", "eve", token="tw_" + "A" * 43), "unknown API token")

    dora = added(
        run(
            "users",
            "add",
            "dora",
            "--role",
            "approver",
            "--team",
            "data",
            "--group",
            "dba",
            "--group",
            "sre",
            token=root,
        )
    )
    assert ids.resolve(dora) == Principal(id="dora", roles=["approver", "dba", "sre"], team="data")
    assert sorted(u.name for u in ids.list_users()) == ["amy", "dora", "root", "vic"]


def test_users_add_needs_an_admin_token_once_users_exist(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    refused(run("users", "add", "eve"), "set TWINOPS_TOKEN to an admin's API token to add users")
    vic = added(run("users", "add", "vic", token=root))
    refused(run("users", "add", "eve", "--role", "admin", token=vic), "needs the admin role to add users")
    assert sorted(u.name for u in ids.list_users()) == ["root", "vic"]


def test_the_first_user_must_be_an_admin(run: Run, ids: Identities) -> None:
    refused(run("users", "add", "vic"), "no users yet", "--role admin")
    refused(run("users", "add", "amy", "--role", "approver", "--group", "sre"), "no users yet")
    assert ids.is_empty()
    added(run("users", "add", "root", "--role", "admin"))


def test_a_token_on_an_empty_database_is_unknown(run: Run, ids: Identities) -> None:
    refused(run("users", "add", "root", "--role", "admin", token="tw_" + "A" * 43), "unknown API token")
    assert ids.is_empty()


def test_only_an_admin_manages_users(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    vic = added(run("users", "add", "vic", token=root))
    amy = added(run("users", "add", "amy", "--role", "approver", token=root))
    for token in (vic, amy, None):
        for args, action in (
            (("users", "token", "root"), "to issue tokens"),
            (("users", "revoke", "root"), "to revoke tokens"),
            (("users", "disable", "root"), "to disable users"),
            (("users", "enable", "root"), "to enable users"),
            (("users", "groups", "amy", "--add", "dba"), "to change groups"),
        ):
            refused(run(*args, token=token), action)
    assert ids.resolve(root).id == "root"  # nothing was revoked or disabled
    assert ids.get_user("root").active_tokens == 1
    assert ids.get_user("amy").groups == ()


def test_a_user_rotates_its_own_token(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    vic = added(run("users", "add", "vic", token=root))
    refused(
        run("users", "token", "root", token=vic), "'vic' (viewer) needs the admin role to issue tokens for other users"
    )
    rotated = added(run("users", "token", "vic", "--revoke-others", token=vic))
    assert ids.resolve(rotated).id == "vic"
    with pytest.raises(AuthenticationError, match="revoked"):
        ids.resolve(vic)


def test_the_last_admin_cannot_lock_everyone_out(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    refused(run("users", "revoke", "root", token=root), "'root' is the last admin who can sign in")
    refused(run("users", "disable", "root", token=root), "last admin")
    assert ids.resolve(root).id == "root"
    rotated = added(run("users", "token", "root", "--revoke-others", token=root))  # rotation keeps one
    assert ids.resolve(rotated).id == "root"


def test_groups_command(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    dora_token = added(run("users", "add", "dora", "--role", "approver", token=root))
    assert ids.resolve(dora_token).roles == ["approver"]

    changed = run("users", "groups", "dora", "--add", "dba", "--add", "sre", token=root)
    assert changed.exit_code == 0, changed.output
    assert "groups of 'dora': dba, sre" in changed.stderr
    assert ids.resolve(dora_token).roles == ["approver", "dba", "sre"]
    changed = run("users", "groups", "dora", "--remove", "sre", token=root)
    assert changed.exit_code == 0 and "groups of 'dora': dba" in changed.stderr
    assert ids.resolve(dora_token).roles == ["approver", "dba"]

    refused(run("users", "groups", "dora", token=root), "nothing to change")
    refused(run("users", "groups", "dora", "--remove", "sre", token=root), "'dora' is not in group 'sre'")
    refused(run("users", "groups", "dora", "--add", "admin", token=root), "'admin' is a role name")
    refused(run("users", "groups", "nobody", "--add", "dba", token=root), "unknown user 'nobody'")
    refused(run("users", "add", "eve", "--role", "approver", "--group", "a b", token=root), "group name 'a b'")

    added(run("users", "add", "vic", "--group", "dba", token=root))
    warned = run("users", "groups", "vic", "--add", "sre", token=root)
    assert warned.exit_code == 0 and "a viewer's groups grant nothing" in warned.stderr

    listed = run("users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {row["name"]: row["groups"] for row in json.loads(listed.stdout)} == {
        "dora": ["dba"],
        "root": [],
        "vic": ["dba", "sre"],
    }
    table = run("users", "list")
    assert table.exit_code == 0 and "dba, sre" in table.stdout


def test_cli_users(run: Run, ids: Identities) -> None:
    root = added(run("users", "add", "root", "--role", "admin"))
    first = run("users", "add", "alice", "--role", "approver", "--team", "edge", "--group", "sre", token=root)
    token = added(first)
    assert "shown once" in first.stderr
    assert "created user 'alice': approver, team edge, groups sre" in first.stderr
    assert ids.resolve(token) == Principal(id="alice", roles=["approver", "sre"], team="edge")

    refused(run("users", "add", "alice", token=root), "user 'alice' already exists")
    assert run("users", "add", "bob", "--role", "root", token=root).exit_code == 2

    listed = run("users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["alice"]["role"] == "approver" and rows["alice"]["active_tokens"] == 1
    assert rows["alice"]["groups"] == ["sre"] and rows["alice"]["team"] == "edge"
    assert token not in listed.stdout and root not in listed.stdout
    table = run("users", "list")
    assert table.exit_code == 0 and "alice" in table.stdout

    second = added(run("users", "token", "alice", token=root))
    assert ids.resolve(second).id == "alice"

    revoked = run("users", "revoke", "alice", token=root)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked 2 tokens of 'alice'" in revoked.stderr
    for old in (token, second):
        with pytest.raises(AuthenticationError):
            ids.resolve(old)

    refused(run("users", "token", "nobody", token=root), "unknown user 'nobody'")
    assert run("users", "disable", "alice", token=root).exit_code == 0
    assert ids.get_user("alice").disabled
    assert run("users", "enable", "alice", token=root).exit_code == 0
    assert not ids.get_user("alice").disabled
