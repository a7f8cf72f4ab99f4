"""Server-side browser sessions for the web UI (table `web_sessions`, migration 0007).

The cookie carries 32 random bytes; the table keeps only their SHA-256, so a copy of the
table signs nobody in. Each session holds the principal it stands for (a local user, by
name, re-read on every request so a disabled user or a changed role takes effect at once;
or an OIDC subject with the role and team its token's claims mapped to), a CSRF token that
every state-changing form must echo, and an absolute expiry. Expired rows are refused and
pruned; sign-out deletes the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import JSON, Column, DateTime, Engine, MetaData, String, Table, delete, insert, select

from controller.core.db import sqlite_immediate
from workflows.contracts import Principal

__all__ = ["Session", "SqlSessions", "web_sessions"]

_ID_BYTES = 32

metadata = MetaData()
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("principal", JSON(), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
_S = web_sessions.c


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Session:
    """One signed-in browser: who, how they signed in, the CSRF token, until when."""

    subject: str
    source: Literal["token", "oidc"]
    principal: Principal
    csrf: str
    created_at: datetime
    expires_at: datetime

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether a form or header echoed this session's CSRF token (constant time)."""
        return bool(presented) and hmac.compare_digest(self.csrf, presented or "")


class SqlSessions:
    """Create, look up and end sessions on SQLite or PostgreSQL (schema from `controller.core.db.migrate`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**sqlite_immediate)

    def create(
        self,
        principal: Principal,
        *,
        source: Literal["token", "oidc"],
        ttl: timedelta,
        now: datetime | None = None,
    ) -> tuple[str, Session]:
        """A new session for `principal`; returns the cookie value (shown once) and the session."""
        session_id = secrets.token_urlsafe(_ID_BYTES)
        created = now or datetime.now(UTC)
        session = Session(
            subject=principal.id,
            source=source,
            principal=principal,
            csrf=secrets.token_urlsafe(24),
            created_at=created,
            expires_at=created + ttl,
        )
        with self._writer.begin() as conn:
            conn.execute(delete(web_sessions).where(_S.expires_at < created))
            conn.execute(
                insert(web_sessions).values(
                    id_hash=_hash(session_id),
                    subject=session.subject,
                    source=source,
                    principal=principal.model_dump(mode="json"),
                    csrf=session.csrf,
                    created_at=created,
                    expires_at=session.expires_at,
                )
            )
        return session_id, session

    def get(self, session_id: str, now: datetime | None = None) -> Session | None:
        """The live session for a cookie value; None when unknown or expired."""
        if not session_id:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(select(web_sessions).where(_S.id_hash == _hash(session_id))).first()
        if row is None:
            return None
        expires = _utc(row.expires_at)
        if expires <= (now or datetime.now(UTC)):
            return None
        return Session(
            subject=row.subject,
            source=row.source,
            principal=Principal.model_validate(row.principal),
            csrf=row.csrf,
            created_at=_utc(row.created_at),
            expires_at=expires,
        )

    def end(self, session_id: str) -> bool:
        """Sign out: delete the session; True when there was one."""
        with self._writer.begin() as conn:
            return bool(conn.execute(delete(web_sessions).where(_S.id_hash == _hash(session_id))).rowcount)

    def count(self, subject: str, now: datetime | None = None) -> int:
        """How many live sessions a subject has (the users page says how many a change ended)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_S.id_hash).where(_S.subject == subject, _S.expires_at > (now or datetime.now(UTC)))
            ).all()
        return len(rows)

    def end_all(self, subject: str) -> int:
        """End every session of a subject (a user disabled or its tokens revoked); returns how many."""
        with self._writer.begin() as conn:
            return int(conn.execute(delete(web_sessions).where(_S.subject == subject)).rowcount)
