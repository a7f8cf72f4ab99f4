"""One id resolver for every command: a unique prefix names the full id.

`resolve_id(prefix, lookup, what)`: an exact id or a unique prefix gives the full id; an
ambiguous prefix raises `AmbiguousIdError` (one line listing candidates); an unknown one
`NotFoundError`. The lookups read the ids that start with a prefix from one store:
`proposal_ids` (the approval inbox: approve, reject, cancel, show) and `remediation_ids`
(the audit ledger: audit show, audit report). A remediation's id is its proposal's id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from controller.core.errors import AmbiguousIdError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Engine

SHOWN = 5
"""Candidates an ambiguity error lists."""

Lookup = Callable[[str, int], Sequence[str]]
"""`lookup(prefix, limit)`: up to `limit` distinct ids starting with `prefix` (exact match included)."""


def resolve_id(prefix: str, lookup: Lookup, what: str = "proposal") -> str:
    """The full id `prefix` names: itself when it is an id, else the one id starting with it."""
    wanted = prefix.strip()
    if not wanted:
        raise NotFoundError(f"unknown {what} {prefix!r}")
    matches = list(dict.fromkeys(lookup(wanted, SHOWN + 1)))
    if wanted in matches:
        return wanted
    if not matches:
        raise NotFoundError(f"unknown {what} {prefix!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN])
        more = " and more" if len(matches) > SHOWN else ""
        raise AmbiguousIdError(f"{what} prefix {prefix!r} is ambiguous: it matches {shown}{more}; type more of the id")
    return matches[0]


def _starting_with(engine: Engine, table: str, column: str, prefix: str, limit: int) -> list[str]:
    from sqlalchemy import String, func, select
    from sqlalchemy import column as col
    from sqlalchemy import table as tbl

    c = col(column, String())
    # substr, not LIKE: exact and case-sensitive on SQLite and PostgreSQL, no wildcard escaping.
    query = select(c).select_from(tbl(table, c)).where(func.substr(c, 1, len(prefix)) == prefix).distinct().order_by(c)
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(query.limit(limit)).scalars()]


def proposal_ids(engine: Engine) -> Lookup:
    """Lookup of proposal ids in the approval inbox."""
    return lambda prefix, limit: _starting_with(engine, "approval_inbox", "proposal_id", prefix, limit)


def remediation_ids(engine: Engine) -> Lookup:
    """Lookup of remediation ids in the audit ledger."""
    return lambda prefix, limit: _starting_with(engine, "audit_events", "remediation_id", prefix, limit)
