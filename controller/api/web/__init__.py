"""The web pages: sign-in, the queue, a proposal, history, a trail, playbook runs, users (server-rendered Jinja2).

`mount(app)` adds the page routers, the static files under /static, and makes errors on
pages HTML: the app's problem handlers answer application/problem+json, which is right
for the API and useless to a browser, so on a page route (or a browser asking for HTML
anywhere outside /api) the same status comes back as a short page saying what happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.api.problems import Problem, problem_of
from controller.api.web.render import PAGE_TAG, SignInRequired, page_caller, render
from controller.core.errors import TwinopsError

__all__ = ["mount"]

STATIC = Path(__file__).parent / "static"
_JSON_PREFIXES = ("/api/", "/openapi.json", "/docs", "/healthz", "/readyz", "/static/")

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def _is_page(request: Request) -> bool:
    route = request.scope.get("route")
    if route is not None:
        return PAGE_TAG in (getattr(route, "tags", None) or ())
    path = request.url.path
    return not path.startswith(_JSON_PREFIXES) and "text/html" in request.headers.get("accept", "")


def _as_problem(exc: Exception) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, TwinopsError):
        return problem_of(exc)
    if isinstance(exc, RequestValidationError):
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()) or "the request"
        return Problem(422, "invalid-request", "Invalid request", f"invalid: {fields}")
    if isinstance(exc, StarletteHTTPException):
        detail = str(exc.detail) if exc.detail else ""
        if exc.status_code == 404:
            return Problem(404, "not-found", "Not found", "There is no page here.")
        return Problem(exc.status_code, f"http-{exc.status_code}", detail or "Error", detail)
    return Problem(500, "internal-error", "Internal error", "the server failed; the error is in its log")


async def _error_page(request: Request, problem: Problem) -> Response:
    caller = None
    # The header shows who is signed in; not after a server error, whose cause may be the session store.
    if problem.status != 401 and problem.status < 500 and request.method in ("GET", "HEAD"):
        try:
            caller = await page_caller(request)
        except (SignInRequired, Problem):
            caller = None
    headers = {k: v for k, v in problem.headers.items() if k.lower() != "www-authenticate"}
    if problem.retry_after is not None:
        headers["Retry-After"] = str(int(problem.retry_after + 0.999))
    return render(
        request,
        "error.html.j2",
        {"status": problem.status, "title": problem.title, "detail": problem.detail},
        caller=caller,
        status=problem.status,
        headers=headers,
    )


def _html_for_pages(app: FastAPI, exc_class: type[Exception] | int) -> None:
    """Wrap the app's handler of `exc_class` so that page requests get an HTML page instead."""
    json_handler: Handler | None = app.exception_handlers.get(exc_class)

    async def handler(request: Request, exc: Exception) -> Response:
        if json_handler is not None and (exc_class is Exception or not _is_page(request)):
            # The catch-all's JSON handler also logs the traceback: let it, then answer a page with a page.
            answer = json_handler(request, exc)
            response = await answer if isinstance(answer, Awaitable) else answer
            if not _is_page(request):
                return response
        return await _error_page(request, _as_problem(exc))

    app.exception_handlers[exc_class] = handler


def mount(app: FastAPI) -> None:
    """Add the pages and the static files to `app`."""
    from controller.api.web.proposal import router as proposal_router
    from controller.api.web.queue import router as queue_router
    from controller.api.web.runs import router as runs_router
    from controller.api.web.signin import router as signin_router
    from controller.api.web.trail import router as trail_router
    from controller.api.web.users import router as users_router

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return exc.response()

    app.add_exception_handler(SignInRequired, sign_in_required)
    for exc_class in (Problem, TwinopsError, RequestValidationError, StarletteHTTPException, Exception):
        _html_for_pages(app, exc_class)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (signin_router, queue_router, proposal_router, trail_router, runs_router, users_router):
        app.include_router(router)
