"""Users, roles, groups and API tokens on SQLite and PostgreSQL (the CLI: test_cli_users.py)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, inspect, select, text
from sqlalchemy.exc import IntegrityError

from controller.adapters.identity import TOKEN_PREFIX, Identities, Role, hash_token, require
from controller.adapters.policy import RegorusPolicyGate, load_bundle
from controller.core.errors import AuthenticationError, AuthorizationError, ConflictError, NotFoundError, TwinopsError
from controller.core.settings import REPO_ROOT
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import alembic
from workflows.contracts import Principal
from workflows.policy import ApprovalDecision, ApprovalInput

# The audit suite's database fixtures, reused as they are (see tests/controller/adapters/audit/conftest.py).
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
    token = ids.add_user("alice", Role.APPROVER, "edge", groups=["sre"])
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


def test_roles_and_what_they_imply(ids: Identities) -> None:
    viewer = ids.resolve(ids.add_user("vic", Role.VIEWER))
    approver = ids.resolve(ids.add_user("amy", Role.APPROVER, "payments", groups=["sre", "network"]))
    admin = ids.resolve(ids.add_user("root", Role.ADMIN, groups=["network", "sre"]))
    assert viewer == Principal(id="vic", roles=["viewer"], team=None)
    assert approver.roles == ["approver", "network", "sre"]
    assert approver.team == "payments"
    assert admin.roles == ["admin", "approver", "network", "sre"]

    require(admin, Role.APPROVER)
    require(admin, "admin")
    require(approver, Role.VIEWER)
    require(approver, Role.APPROVER)
    with pytest.raises(
        AuthorizationError, match=r"user 'amy' \(approver, network, sre\) needs the admin role for this"
    ):
        require(approver, Role.ADMIN)
    with pytest.raises(AuthorizationError, match=r"needs the admin role to add users$"):
        require(approver, Role.ADMIN, "to add users")
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
    ids.add_user("root", Role.ADMIN)  # alice is not the last admin
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
    ids.add_user("alice", Role.APPROVER, "edge", groups=["sre", "dba"])
    ids.revoke_tokens("alice")
    assert ids.get_user("bob").last_used_at is None
    ids.resolve(token)
    alice, bob = ids.list_users()
    assert (alice.name, alice.role, alice.team, alice.active_tokens, alice.disabled, alice.groups) == (
        "alice",
        Role.APPROVER,
        "edge",
        0,
        False,
        ("dba", "sre"),
    )
    assert (bob.name, bob.role, bob.team, bob.active_tokens, bob.groups) == ("bob", Role.VIEWER, None, 1, ())
    assert ids.get_user("alice").groups == ("dba", "sre")
    assert bob.last_used_at is not None and bob.last_used_at.utcoffset() is not None
    assert bob.created_at.utcoffset() is not None
    assert bob.created_at <= bob.last_used_at


# ---- groups -----------------------------------------------------------------------------------


def test_groups_come_from_the_user_not_the_role(ids: Identities) -> None:
    plain = ids.resolve(ids.add_user("amy", Role.APPROVER))
    admin = ids.resolve(ids.add_user("root", Role.ADMIN))
    assert plain.roles == ["approver"]  # no group is implied, `sre` included
    assert admin.roles == ["admin", "approver"]
    dba = ids.resolve(ids.add_user("dora", Role.APPROVER, "data", groups=["dba"]))
    assert dba.roles == ["approver", "dba"]


def test_a_viewers_groups_grant_nothing(ids: Identities) -> None:
    vic = ids.resolve(ids.add_user("vic", Role.VIEWER, groups=["sre", "dba"]))
    assert vic.roles == ["viewer"]
    with pytest.raises(AuthorizationError, match="needs the approver role"):
        require(vic, Role.APPROVER)
    assert ids.get_user("vic").groups == ("dba", "sre")  # kept, for when the user is promoted


def test_principal_holds_exactly_its_groups() -> None:
    assert Identities.principal("a", Role.APPROVER, "t", ["sre", "dba", "sre"]).roles == ["approver", "dba", "sre"]
    assert Identities.principal("a", Role.ADMIN, None, []).roles == ["admin", "approver"]
    assert Identities.principal("v", Role.VIEWER, None, ["dba"]).roles == ["viewer"]


def test_change_groups(ids: Identities) -> None:
    token = ids.add_user("dora", Role.APPROVER, groups=["sre"])
    assert ids.change_groups("dora", add=["dba", "dba"]) == ("dba", "sre")
    assert ids.resolve(token).roles == ["approver", "dba", "sre"]  # the next request sees it
    assert ids.change_groups("dora", add=["sre"]) == ("dba", "sre")  # already held: no-op
    assert ids.change_groups("dora", add=["network"], remove=["sre"]) == ("dba", "network")
    with pytest.raises(NotFoundError, match=r"user 'dora' is not in group 'SRE' \(its groups: dba, network\)"):
        ids.change_groups("dora", remove=["SRE"])
    with pytest.raises(ValueError, match="group 'dba' is both added and removed"):
        ids.change_groups("dora", add=["dba"], remove=["dba"])
    with pytest.raises(NotFoundError, match="unknown user 'nobody'"):
        ids.change_groups("nobody", add=["dba"])
    assert ids.change_groups("dora", remove=["dba", "network"]) == ()
    assert ids.resolve(token).roles == ["approver"]


def test_group_names_are_checked(ids: Identities) -> None:
    for role_name in ("admin", "approver", "viewer", "Admin"):
        with pytest.raises(ValueError, match=f"group name '{role_name}' is a role name"):
            ids.add_user("eve", Role.APPROVER, groups=[role_name])
    for bad in ("", "a b", "x" * 101, "-dash"):
        with pytest.raises(ValueError, match="group name"):
            ids.add_user("eve", Role.APPROVER, groups=[bad])
    assert ids.list_users() == []  # nothing half-created
    ids.add_user("eve", Role.APPROVER, groups="dba")  # one bare string is one group, not three
    assert ids.get_user("eve").groups == ("dba",)
    with pytest.raises(ValueError, match="is a role name"):
        ids.change_groups("eve", add=["admin"])


def test_the_last_admin_who_can_sign_in_is_kept(ids: Identities) -> None:
    root = ids.add_user("root", Role.ADMIN)
    ids.add_user("amy", Role.APPROVER)
    for change in (ids.revoke_tokens, ids.set_disabled):
        with pytest.raises(ConflictError, match="user 'root' is the last admin who can sign in"):
            change("root")
    assert ids.resolve(root).id == "root"
    ids.revoke_tokens("amy")  # not an admin: nothing to keep
    ids.set_disabled("amy")

    second = ids.add_user("second", Role.ADMIN)
    ids.set_disabled("second")  # a disabled admin cannot sign in: root is still the last one
    with pytest.raises(ConflictError, match="last admin"):
        ids.revoke_tokens("root")
    ids.set_disabled("second", False)
    assert ids.revoke_tokens("root") == 1  # second can still sign in
    with pytest.raises(ConflictError, match="user 'second' is the last admin"):
        ids.set_disabled("second")
    ids.set_disabled("root")  # holds no valid token: taking it away takes nothing
    assert ids.resolve(second).roles == ["admin", "approver"]


# ---- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_admin_works_once_on_an_empty_database(ids: Identities) -> None:
    assert ids.is_empty()
    token = ids.bootstrap_admin("root", groups=["sre"])
    assert ids.resolve(token) == Principal(id="root", roles=["admin", "approver", "sre"], team=None)
    assert not ids.is_empty()
    with pytest.raises(ConflictError, match=r"users already exist.*set TWINOPS_TOKEN to an admin's API token"):
        ids.bootstrap_admin("second")
    assert [u.name for u in ids.list_users()] == ["root"]


def test_bootstrap_refused_once_any_user_exists(ids: Identities) -> None:
    ids.add_user("vic", Role.VIEWER)
    with pytest.raises(ConflictError, match="users already exist"):
        ids.bootstrap_admin("root")


def test_concurrent_bootstraps_make_one_admin(engine_factory: Callable[[], Engine]) -> None:
    contenders = 6
    stores = [Identities(engine_factory()) for _ in range(contenders)]
    start = threading.Barrier(contenders)
    outcomes: list[str] = []

    def bootstrap(i: int) -> None:
        start.wait()
        try:
            stores[i].bootstrap_admin(f"root{i}")
            outcomes.append("admin")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=bootstrap, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["admin"] + ["refused"] * (contenders - 1)
    assert len(stores[0].list_users()) == 1


# ---- migration 0004 -------------------------------------------------------------------------


def test_migration_0004_gives_existing_approvers_the_group_they_had(engine: Engine) -> None:
    alembic(engine, command.downgrade, "0003_audit_no_replace")
    assert "user_groups" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        for name, role in (("vic", "viewer"), ("amy", "approver"), ("root", "admin")):
            conn.execute(
                text("INSERT INTO users (name, role, created_at, disabled) VALUES (:n, :r, CURRENT_TIMESTAMP, :d)"),
                {"n": name, "r": role, "d": False},
            )
    alembic(engine, command.upgrade, "head")
    ids = Identities(engine)
    assert {u.name: u.groups for u in ids.list_users()} == {"amy": ("sre",), "root": ("sre",), "vic": ()}
    token = ids.issue_token("amy")
    assert ids.resolve(token).roles == ["approver", "sre"]  # what 0003's code implied: nobody locked out
    alembic(engine, command.downgrade, "0003_audit_no_replace")
    assert "user_groups" not in inspect(engine).get_table_names()
    assert {u["name"] for u in inspect(engine).get_columns("users")} >= {"name", "role"}
    alembic(engine, command.upgrade, "head")  # and up again


def test_a_system_user_is_a_machine_that_can_neither_read_nor_approve(ids: Identities) -> None:
    token = ids.add_user("alertmanager", "system")
    principal = ids.resolve(token)
    assert principal.roles == ["system"]
    with pytest.raises(AuthorizationError, match="needs the viewer role"):
        require(principal, Role.VIEWER)
    with pytest.raises(AuthorizationError, match="needs the approver role"):
        require(principal, Role.APPROVER)
    assert Identities.principal("m", Role.SYSTEM, None, ["sre"]).roles == ["system"]  # groups grant nothing
    with pytest.raises(ValueError, match="use viewer, approver, admin or system"):
        ids.add_user("x", "robot")


def test_migration_0011_keeps_every_users_tokens_and_groups_and_its_downgrade_drops_system_users(
    engine: Engine,
) -> None:
    ids = Identities(engine)
    tokens = {
        "amy": ids.add_user("amy", "approver", "edge", ["sre", "dba"]),
        "vic": ids.add_user("vic", "viewer"),
        "am": ids.add_user("am", "system"),
    }
    alembic(engine, command.downgrade, "0010_playbook_preapprovals")
    assert {u.name for u in ids.list_users()} == {"amy", "vic"}
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the old CHECK is back
        conn.execute(
            text("INSERT INTO users (name, role, created_at, disabled) VALUES (:n, 'system', CURRENT_TIMESTAMP, :d)"),
            {"n": "am2", "d": False},
        )
    alembic(engine, command.upgrade, "head")
    assert ids.resolve(tokens["amy"]).roles == ["approver", "dba", "sre"]
    assert ids.resolve(tokens["vic"]).roles == ["viewer"]
    with pytest.raises(AuthenticationError):
        ids.resolve(tokens["am"])
    assert ids.resolve(ids.add_user("am", "system")).roles == ["system"]


# ---- the real approval policy ---------------------------------------------------------------


def _approval_case(groups: list[str]) -> dict[str, Any]:
    """A low-risk scale of the policy cases, one approval needed from one of `groups`."""
    case: dict[str, Any] = json.loads((REPO_ROOT / "tests" / "policy_cases" / "approval_counts_low.json").read_text())
    case["input"]["safety"]["approver_groups"] = groups
    return dict(case["input"])


async def _decisions(bundle: Path, case: dict[str, Any], *principals: Principal) -> dict[str, ApprovalDecision]:
    """What the approval policy of `bundle` says to each principal approving `case` first."""
    gate = RegorusPolicyGate(load_bundle(bundle), timeout_seconds=10.0)
    try:
        return {
            p.id: await gate.evaluate_approval(ApprovalInput.model_validate({**case, "approver": p.model_dump()}))
            for p in principals
        }
    finally:
        await gate.aclose()


@pytest.fixture
def dba_policy(tmp_path: Path) -> Path:
    """The repo's bundle, with a data.json whose scale actions need the `dba` group."""
    bundle = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", bundle, ignore=shutil.ignore_patterns("*_test.rego"))
    data = json.loads((bundle / "data.json").read_text())
    data["twinops"]["config"]["approval"]["groups_by_action"]["scale"] = ["dba"]
    (bundle / "data.json").write_text(json.dumps(data))
    return bundle


async def test_the_repo_policy_refuses_an_approver_given_no_group(ids: Identities) -> None:
    amy = ids.resolve(ids.add_user("amy", Role.APPROVER, "payments"))
    root = ids.resolve(ids.add_user("root", Role.ADMIN, "payments"))
    decisions = await _decisions(REPO_ROOT / "policies", _approval_case(["sre"]), amy, root)
    for who in ("amy", "root"):  # the role alone used to carry `sre`, and with it every scale approval
        assert decisions[who].counts is False, who
        assert [r.code for r in decisions[who].reasons] == ["not_in_approver_group"], who


async def test_a_group_other_than_sre_is_required_and_met_only_by_a_member(ids: Identities, dba_policy: Path) -> None:
    sre = ids.resolve(ids.add_user("sam", Role.APPROVER, "payments", groups=["sre", "network"]))
    admin = ids.resolve(ids.add_user("root", Role.ADMIN, "payments", groups=["sre"]))
    dba = ids.resolve(ids.add_user("dora", Role.APPROVER, "payments", groups=["dba"]))
    viewer = ids.resolve(ids.add_user("vic", Role.VIEWER, "payments", groups=["dba"]))
    decisions = await _decisions(dba_policy, _approval_case(["dba"]), sre, admin, dba, viewer)
    for refused in ("sam", "root", "vic"):
        assert decisions[refused].counts is False, refused
        assert [r.code for r in decisions[refused].reasons] == ["not_in_approver_group"], refused
    assert decisions["dora"].counts is True
    assert decisions["dora"].quorum_met is True


def test_revoking_tokens_or_disabling_a_user_ends_its_browser_sessions(ids: Identities, engine: Engine) -> None:
    from datetime import timedelta

    from controller.adapters.sessions import SqlSessions

    ids.bootstrap_admin("root")
    ids.add_user("ana", "approver")
    ids.add_user("bo", "viewer")
    sessions = SqlSessions(engine)
    ana, _ = sessions.create(ids.principal("ana", Role.APPROVER, None), source="token", ttl=timedelta(hours=1))
    bo, _ = sessions.create(ids.principal("bo", Role.VIEWER, None), source="token", ttl=timedelta(hours=1))
    sso, _ = sessions.create(ids.principal("ana", Role.APPROVER, None), source="oidc", ttl=timedelta(hours=1))
    ids.revoke_tokens("ana")
    assert sessions.get(ana) is None, "a revoked token's browser session lives on"
    assert sessions.get(sso) is not None, "an SSO session is the issuer's to end"
    assert sessions.get(bo) is not None
    ids.set_disabled("bo")
    assert sessions.get(bo) is None, "a disabled user's browser session lives on"
