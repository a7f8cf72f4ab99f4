"""One line for every error a user can cause: bad settings, an unreachable database or Temporal.

`explain(exc)` turns such an exception into one line naming the setting to fix; anything
else (a bug) is left to the traceback.
"""

from __future__ import annotations

import sys

from controller.cli._common import one_line
from controller.core.errors import TwinopsError

# Values never echoed back: credentials, and URLs that may carry them.
_SECRET_FIELDS = frozenset(
    {"token", "actuator_secret", "database_url", "notifier_url", "actuator_url", "twin_url"}
    | {"oidc_client_secret", "temporal_api_key", "api_url"}
)


def _settings_problem(exc: Exception) -> str | None:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = f"TWINOPS_{field.upper()}"
        shown = "" if field in _SECRET_FIELDS else f"={error.get('input')!s}"
        problems.append(f"{name}{shown}: {error['msg']}")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def _database_problem(exc: Exception) -> str | None:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    detail = str(orig if orig is not None else exc).strip().splitlines()
    return f"database (TWINOPS_DATABASE_URL): {type(orig or exc).__name__}: {detail[0] if detail else ''}"


def explain(exc: BaseException) -> str | None:
    """One line saying what is wrong and which setting to fix, or None when `exc` is not the user's doing."""
    if not isinstance(exc, Exception):
        return None
    if isinstance(exc, TwinopsError):
        return one_line(str(exc))
    for probe in (_settings_problem, _database_problem):
        message = probe(exc)
        if message is not None:
            return one_line(message)
    return None
