"""Users, roles and API tokens: who may look, who may approve, who administers.

A token is `tw_` + 32 bytes from `secrets` (URL-safe base64). Only its SHA-256 hex
digest is stored. A password needs a slow, salted KDF because it is guessable; a
256-bit random token is not: brute-forcing its preimage from a leaked hash costs
2**256 work whatever the hash speed, and no two users share a token, so salting buys
nothing. A fast hash also keeps the lookup a single indexed equality on every request.

Roles are ordered viewer < approver < admin. Groups (`sre`, `dba`, ...) are stored per
user, never implied: the approval policy asks for one of an action type's groups
(`policies/data.json`: `approval.groups_by_action`), so a group only a few people hold
can be required for real. A principal's `roles` hold its role, the roles it implies
(admin implies approver) and, for approvers and admins only, exactly the user's groups;
a viewer's groups are kept but grant nothing. A group may not be named like a role.

Who may manage users is the caller's decision (the CLI asks for an admin's token);
`bootstrap_admin` is the one way in without one: the first admin of an empty database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    delete,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from controller.adapters.sessions import web_sessions
from controller.core.db import sqlite_immediate
from controller.core.errors import AuthenticationError, AuthorizationError, ConflictError, NotFoundError
from workflows.contracts import Principal

__all__ = [
    "TOKEN_PREFIX",
    "Identities",
    "Role",
    "User",
    "api_tokens",
    "hash_token",
    "metadata",
    "require",
    "user_groups",
    "users",
]

TOKEN_PREFIX = "tw_"
"""Every API token starts with this, so secret scanners and humans recognize one."""

_TOKEN_BYTES = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class Role(StrEnum):
    """What a user may do: viewer reads, approver also approves and rejects, admin also manages users.

    `system` is a machine (Alertmanager, a twin exporter): it posts alerts and snapshots and nothing
    else. It ranks below viewer, so it can neither read the queue nor approve, and no human role
    implies it: the endpoints for machines ask for exactly `system`.
    """

    VIEWER = "viewer"
    APPROVER = "approver"
    ADMIN = "admin"
    SYSTEM = "system"

    @property
    def rank(self) -> int:
        """Position in system < viewer < approver < admin."""
        return _RANKS[self]

    def implied(self) -> list[Role]:
        """This role and every role below it that it implies, highest first (admin implies approver)."""
        return [self] if self is not Role.ADMIN else [Role.ADMIN, Role.APPROVER]


_RANKS = {Role.SYSTEM: -1, Role.VIEWER: 0, Role.APPROVER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class User:
    """A user as `list_users` shows it (never with a token)."""

    name: str
    role: Role
    team: str | None
    created_at: datetime
    disabled: bool
    active_tokens: int
    last_used_at: datetime | None
    groups: tuple[str, ...] = ()


metadata = MetaData()
"""Metadata of the identity tables (the schema itself is created by migration 0002)."""

users = Table(
    "users",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("team", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean(), nullable=False, server_default=false()),
    CheckConstraint("role IN ('viewer', 'approver', 'admin', 'system')", name="ck_users_role"),
)
"""One row per human."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("user_id", Integer(), ForeignKey("users.id", name="fk_api_tokens_user_id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked", Boolean(), nullable=False, server_default=false()),
    Index("ix_api_tokens_user_id", "user_id"),
)
"""API tokens, by SHA-256 digest only."""

user_groups = Table(
    "user_groups",
    metadata,
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", name="fk_user_groups_user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Not "group": a reserved word in SQL, and raw SQL (migrations, dumps) should not need quoting.
    Column("group_name", String(100), nullable=False),
    PrimaryKeyConstraint("user_id", "group_name", name="pk_user_groups"),
)
"""The groups each user holds (migration 0004); for approvers and admins they are approver groups."""

_U = users.c
_K = api_tokens.c
_G = user_groups.c


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, lowercase hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (we only ever write UTC); PostgreSQL aware ones.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rank_of(principal: Principal) -> int:
    return max((_RANKS[Role(r)] for r in principal.roles if r in _RANKS), default=-1)


def require(principal: Principal, role: Role | str, action: str = "for this") -> None:
    """Raise `AuthorizationError` unless `principal` holds `role` or a higher one; `action` ends the message."""
    needed = Role(role)
    if _rank_of(principal) < needed.rank:
        held = ", ".join(principal.roles) or "no role"
        raise AuthorizationError(f"user {principal.id!r} ({held}) needs the {needed.value} role {action}")


class Identities:
    """Users and their API tokens in the controller's database (migrated by `controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)

    def add_user(
        self, name: str, role: Role | str = Role.VIEWER, team: str | None = None, groups: Iterable[str] = ()
    ) -> str:
        """Create a user with its groups and first token; the token is returned here and never again."""
        return self._add(name, role, team, groups, first=False)

    def bootstrap_admin(self, name: str, team: str | None = None, groups: Iterable[str] = ()) -> str:
        """Create the first admin of an empty database; `ConflictError` once any user exists.

        The check and the insert are one transaction holding the users table's write lock,
        so two concurrent bootstraps make one admin, not two.
        """
        return self._add(name, Role.ADMIN, team, groups, first=True)

    def _add(self, name: str, role: Role | str, team: str | None, groups: Iterable[str], *, first: bool) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"user name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
        checked = _role(role)
        held = _groups(groups)
        token = _new_token()
        now = datetime.now(UTC)
        try:
            with self._writer.begin() as conn:
                if first:
                    # SQLite: BEGIN IMMEDIATE already serializes writers. PostgreSQL: EXCLUSIVE
                    # conflicts with every writer's lock (readers go on), so no insert slips in
                    # between the emptiness check and ours.
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("LOCK TABLE users IN EXCLUSIVE MODE"))
                    if conn.execute(select(_U.id).limit(1)).first() is not None:
                        raise ConflictError(
                            "users already exist: only the first admin of an empty database is added "
                            "without a token; set TWINOPS_TOKEN to an admin's API token"
                        )
                if conn.execute(select(_U.id).where(_U.name == name)).first() is not None:
                    raise ConflictError(f"user {name!r} already exists")
                user_id = conn.execute(
                    insert(users)
                    .values(name=name, role=checked.value, team=team or None, created_at=now)
                    .returning(_U.id)
                ).scalar_one()
                if held:
                    conn.execute(insert(user_groups), [{"user_id": user_id, "group_name": g} for g in held])
                conn.execute(insert(api_tokens).values(user_id=user_id, token_hash=hash_token(token), created_at=now))
        except IntegrityError as exc:  # a concurrent add of the same name won the race
            raise ConflictError(f"user {name!r} already exists") from exc
        return token

    def is_empty(self) -> bool:
        """True while no user exists at all (the only time `bootstrap_admin` works)."""
        with self._engine.connect() as conn:
            return conn.execute(select(_U.id).limit(1)).first() is None

    def change_groups(self, name: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[str, ...]:
        """Add and remove groups of a user in one transaction; returns the groups it then holds, sorted.

        Adding a group already held is a no-op; removing one not held is a `NotFoundError`
        (a typo must not pass for a removal); naming a group in both is a `ValueError`.
        """
        adding, removing = _groups(add), _groups(remove)
        both = sorted(set(adding) & set(removing))
        if both:
            raise ValueError(f"group {both[0]!r} is both added and removed")
        with self._writer.begin() as conn:
            user_id, _ = self._user(conn, name)
            held = set(self._groups_of(conn, user_id))
            missing = [g for g in removing if g not in held]
            if missing:
                shown = ", ".join(sorted(held)) or "none"
                raise NotFoundError(f"user {name!r} is not in group {missing[0]!r} (its groups: {shown})")
            new = [g for g in adding if g not in held]
            if new:
                conn.execute(insert(user_groups), [{"user_id": user_id, "group_name": g} for g in new])
            if removing:
                conn.execute(delete(user_groups).where(_G.user_id == user_id, _G.group_name.in_(removing)))
            return tuple(sorted((held | set(new)) - set(removing)))

    def issue_token(self, name: str, *, revoke_others: bool = False) -> str:
        """A new token for an enabled user, returned once; `revoke_others` makes it the only valid one."""
        token = _new_token()
        with self._writer.begin() as conn:
            user_id, disabled = self._user(conn, name)
            if disabled:
                raise AuthenticationError(f"user {name!r} is disabled; enable it before issuing a token")
            if revoke_others:
                conn.execute(update(api_tokens).where(_K.user_id == user_id).values(revoked=True))
            conn.execute(
                insert(api_tokens).values(user_id=user_id, token_hash=hash_token(token), created_at=datetime.now(UTC))
            )
        return token

    def revoke_tokens(self, name: str) -> int:
        """Revoke every token of `name` and end its token browser sessions; returns how many tokens were valid."""
        with self._writer.begin() as conn:
            user_id, _ = self._user(conn, name)
            self._keep_an_admin(conn, user_id, name, "revoking its tokens")
            result = conn.execute(
                update(api_tokens).where(_K.user_id == user_id, _K.revoked.is_(False)).values(revoked=True)
            )
            _end_sessions(conn, name)
            return int(result.rowcount)

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        """Disable (or enable again) a user; a disabled user's tokens stop resolving and its sessions end."""
        with self._writer.begin() as conn:
            user_id, _ = self._user(conn, name)
            if disabled:
                self._keep_an_admin(conn, user_id, name, "disabling it")
                _end_sessions(conn, name)
            conn.execute(update(users).where(_U.name == name).values(disabled=disabled))

    def resolve(self, token: str) -> Principal:
        """The principal a token stands for; `AuthenticationError` when unknown, revoked or disabled."""
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationError(f"not a twinops API token (they start with {TOKEN_PREFIX!r})")
        digest = hash_token(token)
        with self._writer.begin() as conn:
            row = conn.execute(
                select(_K.id, _K.user_id, _K.token_hash, _K.revoked, _U.name, _U.role, _U.team, _U.disabled)
                .join(users, _U.id == _K.user_id)
                .where(_K.token_hash == digest)
            ).first()
            # The indexed lookup found the row; compare_digest confirms it in constant time, whatever
            # the database's collation did with the comparison.
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                raise AuthenticationError("unknown API token")
            if row.revoked:
                raise AuthenticationError(f"API token of user {row.name!r} has been revoked")
            if row.disabled:
                raise AuthenticationError(f"user {row.name!r} is disabled")
            conn.execute(update(api_tokens).where(_K.id == row.id).values(last_used_at=datetime.now(UTC)))
            groups = self._groups_of(conn, row.user_id)
        return self.principal(row.name, Role(row.role), row.team, groups)

    @staticmethod
    def principal(name: str, role: Role, team: str | None, groups: Iterable[str] = ()) -> Principal:
        """The principal of a user: its role, the roles that implies, and its own groups if it approves.

        No group is implied by a role, and a viewer's groups grant nothing.
        """
        roles = [r.value for r in role.implied()]
        if role.rank >= Role.APPROVER.rank:
            roles += [g for g in sorted(set(groups)) if g not in roles]
        return Principal(id=name, roles=roles, team=team)

    def list_users(self) -> list[User]:
        """Every user, by name, with how many valid tokens it holds and when one was last used."""
        return self._users()

    def get_user(self, name: str) -> User:
        """One user by name; `NotFoundError` when unknown."""
        found = self._users(name)
        if not found:
            raise NotFoundError(f"unknown user {name!r}")
        return found[0]

    def _users(self, name: str | None = None) -> list[User]:
        active = func.count(_K.id).filter(_K.revoked.is_(False))
        query = (
            select(_U.name, _U.role, _U.team, _U.created_at, _U.disabled, active, func.max(_K.last_used_at))
            .outerjoin(api_tokens, _K.user_id == _U.id)
            .group_by(_U.id, _U.name, _U.role, _U.team, _U.created_at, _U.disabled)
            .order_by(_U.name)
        )
        groups_query = select(_U.name, _G.group_name).join(users, _U.id == _G.user_id).order_by(_G.group_name)
        if name is not None:
            query = query.where(_U.name == name)
            groups_query = groups_query.where(_U.name == name)
        with self._engine.connect() as conn, conn.begin():  # one transaction: users and groups agree
            rows = conn.execute(query).all()
            held: dict[str, list[str]] = {}
            for user, group in conn.execute(groups_query):
                held.setdefault(user, []).append(group)
        return [
            User(
                name=name,
                role=Role(role),
                team=team,
                created_at=_utc(created) or created,
                disabled=bool(disabled),
                active_tokens=int(count),
                last_used_at=_utc(last_used),
                groups=tuple(held.get(name, ())),
            )
            for name, role, team, created, disabled, count, last_used in rows
        ]

    @staticmethod
    def _user(conn: Connection, name: str) -> tuple[int, bool]:
        row = conn.execute(select(_U.id, _U.disabled).where(_U.name == name)).first()
        if row is None:
            raise NotFoundError(f"unknown user {name!r}")
        return int(row.id), bool(row.disabled)

    @staticmethod
    def _keep_an_admin(conn: Connection, user_id: int, name: str, change: str) -> None:
        """Refuse to take away the last admin who can sign in (enabled, with a valid token).

        Without one nobody could manage users again, and the bootstrap is only for an
        empty database. On PostgreSQL the check holds the users table's write lock, so two
        admins revoking each other at once cannot both succeed.
        """

        def working_admins(*where: Any) -> Select[tuple[int]]:
            return (
                select(_U.id)
                .join(api_tokens, _K.user_id == _U.id)
                .where(_U.role == Role.ADMIN.value, _U.disabled.is_(False), _K.revoked.is_(False), *where)
                .limit(1)
            )

        if conn.execute(working_admins(_U.id == user_id)).first() is None:
            return  # not an admin who can sign in now: nothing is taken away
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE users IN EXCLUSIVE MODE"))
        if conn.execute(working_admins(_U.id != user_id)).first() is None:
            raise ConflictError(
                f"user {name!r} is the last admin who can sign in; {change} would leave nobody to manage "
                "users (add another admin first)"
            )

    @staticmethod
    def _groups_of(conn: Connection, user_id: int) -> list[str]:
        return list(conn.scalars(select(_G.group_name).where(_G.user_id == user_id).order_by(_G.group_name)).all())


def _end_sessions(conn: Connection, name: str) -> None:
    """End the browser sessions a user signed in with a token (in the caller's transaction).

    A revoked token or a disabled user must not live on in a signed-in browser; whichever
    front end makes the change (CLI, API, pages), the sessions end with it.
    """
    sessions = web_sessions.c
    conn.execute(delete(web_sessions).where(sessions.subject == name, sessions.source == "token"))


def _groups(groups: Iterable[str]) -> list[str]:
    """Checked group names, deduplicated, in the order given."""
    if isinstance(groups, str):  # a bare string would otherwise be taken as its letters
        groups = [groups]
    checked: list[str] = []
    for group in groups:
        if not _NAME.fullmatch(group):
            raise ValueError(f"group name {group!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
        if group.lower() in _RANKS:
            # A group is matched against the principal's roles: one named "admin" would be a role.
            raise ValueError(f"group name {group!r} is a role name; roles are given with --role")
        if group not in checked:
            checked.append(group)
    return checked


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}: use viewer, approver, admin or system") from None
