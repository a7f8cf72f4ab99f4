"""Users, roles and API tokens on SQLite and PostgreSQL, and the `twinops users` commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, select
from typer.testing import CliRunner

from controller.cli import app as cli_app
from controller.db import create_engine
from controller.errors import AuthenticationError, AuthorizationError, ConflictError, NotFoundError, TwinopsError
from controller.identity import TOKEN_PREFIX, Identities, Role, hash_token, require
from controller.settings import Settings
from tests.controller.audit import conftest as audit_db
from workflows.contracts import Principal

# The audit suite's database fixtures, reused as they are (see tests/controller/audit/conftest.py).
sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory


@pytest.fixture
def engine(engine_factory: Callable[[], Engine]) -> Engine:
    return engine_factory()


@pytest.fixture
def ids(engine: Engine) -> Identities:
    return Identities(engine)


def database_text(engine: Engine) -> str:
    """Every value of every table, as one string: what someone with a database dump sees."""
    reflected = MetaData()
    reflected.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in reflected.sorted_tables for row in conn.execute(select(table)))


def test_add_user_returns_a_token_that_resolves(ids: Identities) -> None:
    token = ids.add_user("alice", Role.APPROVER, "edge")
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) == len(TOKEN_PREFIX) + 43  # 32 bytes, URL-safe base64 without padding
    assert ids.resolve(token) == Principal(id="alice", roles=["approver", "sre"], team="edge")


def test_tokens_are_stored_hashed_only(ids: Identities, engine: Engine) -> None:
    first = ids.add_user("alice", "approver", "edge")
    second = ids.issue_token("alice")
    dump = database_text(engine)
    for token in (first, second):
        assert token not in dump
        assert token[len(TOKEN_PREFIX) :] not in dump
        assert hash_token(token) in dump


def test_roles_and_what_they_imply(engine: Engine) -> None:
    ids = Identities(engine, approver_groups=("sre", "network"))
    viewer = ids.resolve(ids.add_user("vic", Role.VIEWER))
    approver = ids.resolve(ids.add_user("amy", Role.APPROVER, "payments"))
    admin = ids.resolve(ids.add_user("root", Role.ADMIN))
    assert viewer == Principal(id="vic", roles=["viewer"], team=None)
    assert approver.roles == ["approver", "sre", "network"]
    assert approver.team == "payments"
    assert admin.roles == ["admin", "approver", "sre", "network"]

    require(admin, Role.APPROVER)
    require(admin, "admin")
    require(approver, Role.VIEWER)
    require(approver, Role.APPROVER)
    with pytest.raises(AuthorizationError, match=r"user 'amy' \(approver, sre, network\) needs the admin role"):
        require(approver, Role.ADMIN)
    with pytest.raises(AuthorizationError, match="needs the approver role") as info:
        require(viewer, Role.APPROVER)
    assert isinstance(info.value, PermissionError)
    with pytest.raises(AuthorizationError, match=r"\(no role\)"):
        require(Principal(id="ghost"), Role.VIEWER)
    with pytest.raises(AuthorizationError):
        require(Principal(id="groupie", roles=["sre"]), Role.VIEWER)  # a group is not a role


def test_duplicate_and_invalid_users(ids: Identities) -> None:
    ids.add_user("alice", Role.APPROVER)
    with pytest.raises(ConflictError, match="user 'alice' already exists"):
        ids.add_user("alice", Role.VIEWER)
    with pytest.raises(ValueError, match="unknown role 'root'"):
        ids.add_user("bob", "root")
    for bad in ("", " alice", "a b", "x" * 101, "-dash"):
        with pytest.raises(ValueError, match="user name"):
            ids.add_user(bad)
    assert [u.name for u in ids.list_users()] == ["alice"]


def test_unknown_tokens(ids: Identities) -> None:
    token = ids.add_user("alice", Role.APPROVER)
    for bad in ("tw_" + "A" * 43, token[:-1], token + "x", "", "Bearer " + token, token.upper()):
        with pytest.raises(AuthenticationError) as info:
            ids.resolve(bad)
        assert isinstance(info.value, PermissionError)
        assert isinstance(info.value, TwinopsError)
        assert token not in str(info.value)


def test_issue_and_revoke(ids: Identities) -> None:
    first = ids.add_user("alice", Role.APPROVER)
    second = ids.issue_token("alice")
    assert second != first
    assert ids.resolve(first).id == ids.resolve(second).id == "alice"
    assert ids.get_user("alice").active_tokens == 2

    third = ids.issue_token("alice", revoke_others=True)
    for old in (first, second):
        with pytest.raises(AuthenticationError, match="API token of user 'alice' has been revoked"):
            ids.resolve(old)
    assert ids.resolve(third).id == "alice"

    assert ids.revoke_tokens("alice") == 1
    assert ids.revoke_tokens("alice") == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        ids.resolve(third)
    assert ids.resolve(ids.issue_token("alice")).id == "alice"  # a fresh one works again


def test_disabled_users(ids: Identities) -> None:
    token = ids.add_user("alice", Role.ADMIN)
    ids.set_disabled("alice")
    with pytest.raises(AuthenticationError, match="user 'alice' is disabled"):
        ids.resolve(token)
    with pytest.raises(AuthenticationError, match="disabled"):
        ids.issue_token("alice")
    assert ids.get_user("alice").disabled
    ids.set_disabled("alice", False)
    assert ids.resolve(token).id == "alice"


def test_unknown_users(ids: Identities) -> None:
    for call in (ids.issue_token, ids.revoke_tokens, ids.set_disabled, ids.get_user):
        with pytest.raises(NotFoundError, match="unknown user 'nobody'"):
            call("nobody")


def test_list_users(ids: Identities) -> None:
    token = ids.add_user("bob", Role.VIEWER)
    ids.add_user("alice", Role.APPROVER, "edge")
    ids.revoke_tokens("alice")
    assert ids.get_user("bob").last_used_at is None
    ids.resolve(token)
    alice, bob = ids.list_users()
    assert (alice.name, alice.role, alice.team, alice.active_tokens, alice.disabled) == (
        "alice",
        Role.APPROVER,
        "edge",
        0,
        False,
    )
    assert (bob.name, bob.role, bob.team, bob.active_tokens) == ("bob", Role.VIEWER, None, 1)
    assert bob.last_used_at is not None and bob.last_used_at.utcoffset() is not None
    assert bob.created_at.utcoffset() is not None
    assert bob.created_at <= bob.last_used_at


# ---- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    monkeypatch.delenv("TWINOPS_DATABASE_URL", raising=False)
    return tmp_path


def test_cli_users(home: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(cli_app, ["users", "add", "alice", "--role", "approver", "--team", "edge"])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert token.startswith(TOKEN_PREFIX)
    assert "shown once" in added.stderr

    engine = create_engine(Settings(home=home).resolved_database_url)
    try:
        ids = Identities(engine)
        assert ids.resolve(token) == Principal(id="alice", roles=["approver", "sre"], team="edge")

        again = runner.invoke(cli_app, ["users", "add", "alice"])
        assert again.exit_code == 2
        assert "user 'alice' already exists" in again.stderr

        bad_role = runner.invoke(cli_app, ["users", "add", "bob", "--role", "root"])
        assert bad_role.exit_code == 2

        listed = runner.invoke(cli_app, ["users", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        [row] = json.loads(listed.stdout)
        assert row["name"] == "alice" and row["role"] == "approver" and row["active_tokens"] == 1
        assert token not in listed.stdout
        table = runner.invoke(cli_app, ["users", "list"])
        assert table.exit_code == 0 and "alice" in table.stdout

        issued = runner.invoke(cli_app, ["users", "token", "alice"])
        assert issued.exit_code == 0, issued.output
        second = issued.stdout.strip()
        assert ids.resolve(second).id == "alice"

        revoked = runner.invoke(cli_app, ["users", "revoke", "alice"])
        assert revoked.exit_code == 0, revoked.output
        assert "revoked 2 tokens of 'alice'" in revoked.stderr
        for old in (token, second):
            with pytest.raises(AuthenticationError):
                ids.resolve(old)

        unknown = runner.invoke(cli_app, ["users", "token", "nobody"])
        assert unknown.exit_code == 2
        assert "unknown user 'nobody'" in unknown.stderr

        assert runner.invoke(cli_app, ["users", "disable", "alice"]).exit_code == 0
        assert ids.get_user("alice").disabled
        assert runner.invoke(cli_app, ["users", "enable", "alice"]).exit_code == 0
        assert not ids.get_user("alice").disabled
    finally:
        engine.dispose()
