"""Rendering pages: the Jinja2 environment, the signed-in caller of a page, and errors as HTML.

Templates autoescape everything; the few pieces of markup built in Python (the SVG) are
`Markup` built from escaped parts. Every page answer carries a strict Content Security
Policy (scripts, styles and images from this origin only; no inline script or style), so a
value that slipped through escaping still could not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from controller.adapters.identity import Role
from controller.api.auth import SESSION_COOKIE, Caller, authenticate
from controller.api.context import context_of
from controller.api.problems import Problem

__all__ = [
    "FETCH_HEADER",
    "PAGE_TAG",
    "PageCaller",
    "SignInRequired",
    "age_words",
    "countdown_words",
    "page_caller",
    "render",
    "safe_next",
    "security_headers",
]

PAGE_TAG = "pages"
"""Routes with this tag answer errors as HTML pages (see `controller.api.web.mount`)."""
FETCH_HEADER = "X-Twinops-Fetch"
"""Sent by the pages' own scripts: a signed-out poll gets a 401, not a redirect to a page it cannot show."""

TEMPLATES = Path(__file__).parent / "templates"
_INF = float("inf")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def security_headers() -> dict[str, str]:
    """Headers every page answer carries."""
    return {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def age_words(seconds: float | None) -> str:
    """A duration as an approver reads it: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def countdown_words(deadline: Any, now: datetime | None = None) -> str:
    """Time left until a deadline ('in 14 min'), or how long ago it passed ('overdue by 3 min')."""
    at = _parse(deadline)
    if at is None:
        return "no deadline"
    left = (at - (now or datetime.now(UTC))).total_seconds()
    return f"in {age_words(left)}" if left >= 0 else f"overdue by {age_words(-left)}"


def when_words(value: Any, seconds: bool = False) -> str:
    """A time as 'YYYY-MM-DD HH:MM UTC' (with ':SS' when `seconds`)."""
    at = _parse(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " UTC") if at else "–"


def iso(value: Any) -> str:
    """A time as ISO 8601 UTC for a `<time datetime>` attribute and the pages' scripts."""
    at = _parse(value)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else ""


def number_words(value: Any, digits: int = 2) -> str:
    """A number with `digits` decimals; '–' for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value in (_INF, -_INF):
        return "–"
    return f"{value:.{digits}f}"


def percent_words(value: Any) -> str:
    """A share (0..1) as a percentage."""
    text = number_words(value * 100 if isinstance(value, int | float) else None, 0)
    return text if text == "–" else f"{text}%"


def money_words(value: Any) -> str:
    """A cost as currency units with two decimals."""
    text = number_words(value)
    return text if text == "–" else f"${text}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        age=age_words,
        countdown=countdown_words,
        when=when_words,
        iso=iso,
        num=number_words,
        pct=percent_words,
        money=money_words,
    )
    return env


_ENV = _environment()


def render(
    request: Request,
    template: str,
    values: Mapping[str, Any] | None = None,
    *,
    caller: Caller | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page: `template` with `values`, the caller (for the header and the forms' CSRF token) and the settings."""
    ctx = context_of(request)
    body = _ENV.get_template(template).render(
        request_path=request.url.path,
        caller=caller,
        csrf=caller.csrf if caller else "",
        is_admin=bool(caller and caller.can(Role.ADMIN)),
        is_approver=bool(caller and caller.can(Role.APPROVER)),
        oidc_enabled=bool(ctx.settings.oidc_issuer),
        **(values or {}),
    )
    return HTMLResponse(body, status_code=status, headers={**security_headers(), **(headers or {})})


def render_fragment(template: str, values: Mapping[str, Any]) -> str:
    """A template's text alone (a fragment a page's script puts in place)."""
    return _ENV.get_template(template).render(**values)


class SignInRequired(Exception):  # noqa: N818 - a control-flow signal the app turns into a redirect, not an error
    """The page needs a signed-in caller; answered with a redirect to /login (a 401 for the pages' scripts)."""

    def __init__(self, request: Request, *, expired: bool = False) -> None:
        super().__init__("sign in required")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.next = path
        self.expired = expired
        self.from_script = request.headers.get(FETCH_HEADER) == "1"

    def response(self) -> Response:
        """The redirect (or, for a page's script, a 401 the script turns into a 'sign in again' note)."""
        if self.from_script:
            response: Response = Response("signed out", status_code=401, media_type="text/plain")
        else:
            query = "?next=" + quote(self.next, safe="/") if self.next not in ("/", "") else ""
            response = RedirectResponse("/login" + query, status_code=303)
        if self.expired:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response


async def page_caller(request: Request) -> Caller:
    """Dependency of every page: the signed-in caller; with none (or an expired session), go sign in."""
    try:
        found = await authenticate(context_of(request), request)
    except Problem as problem:
        if problem.status == 401:
            raise SignInRequired(request, expired=True) from None
        raise
    if found is None:
        raise SignInRequired(request)
    # A machine (the system role: Alertmanager, a snapshot pusher) posts; it reads no page.
    if not found.can(Role.VIEWER):
        who = f"user {found.principal.id!r} ({found.role.value})"
        raise Problem(403, "forbidden", "Not allowed", f"{who} reads no page: machines only post alerts and snapshots")
    return found


PageCaller = Annotated[Caller, Depends(page_caller)]
"""A page handler's signed-in caller."""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site (`//evil`, `https://...`, `/\\evil`)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(c in value for c in "\\\r\n\t") or any(ord(c) < 0x20 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout")):
        return "/"
    return value
