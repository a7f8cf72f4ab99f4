"""Errors as RFC 9457 problem details (`application/problem+json`), one stable `type` per error.

Every error the API answers goes through here: `Problem` raised by a handler, a `TwinopsError`
from below (mapped by class), a request that does not validate (422, naming each field), an
unknown route (404) and anything unexpected (500, logged with its traceback, the body saying
only that it is an internal error). Pages (text/html requests) get the same status with a
short HTML page instead; see `controller.api.web`.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.core.errors import (
    AmbiguousIdError,
    AuditError,
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PolicyError,
    RuntimeUnavailableError,
    TwinopsError,
)

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "ProblemBody",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://twinops.dev/problems/"


class InvalidParam(BaseModel):
    """One offending field of a request."""

    name: str = Field(description="Where: body.reason, query.limit, path.proposal_id, ...")
    reason: str


class ProblemBody(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="A stable URI per kind of error.")
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = Field(default=None, alias="invalid-params")
    retry_after_seconds: float | None = None

    model_config = {"populate_by_name": True}


class Problem(Exception):  # noqa: N818 - named after the RFC's "problem", it is raised as an error
    """An error answered as problem details: status, a stable slug, a title and a detail naming the thing."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str = "",
        *,
        invalid: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.invalid = invalid
        self.headers = headers or {}
        self.retry_after = retry_after

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The JSON body."""
        data: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            data["instance"] = instance
        if self.invalid:
            data["invalid-params"] = [{"name": n, "reason": r} for n, r in self.invalid]
        if self.retry_after is not None:
            data["retry_after_seconds"] = round(self.retry_after, 1)
        return data


# class -> (status, slug, title); the first match in order wins (subclasses before their bases).
_MAPPED: tuple[tuple[type[TwinopsError], int, str, str], ...] = (
    (AmbiguousIdError, 404, "ambiguous-id", "Ambiguous id"),
    (NotFoundError, 404, "not-found", "Not found"),
    (AuthenticationError, 401, "unauthenticated", "Not signed in"),
    (AuthorizationError, 403, "forbidden", "Not allowed"),
    (ConflictError, 409, "conflict", "Conflict"),
    (RuntimeUnavailableError, 503, "temporal-unavailable", "Workflow engine unavailable"),
    (PolicyError, 503, "policy-unavailable", "Policy engine unavailable"),
    (AuditError, 503, "audit-unavailable", "Audit ledger unavailable"),
    (ConfigurationError, 500, "misconfigured", "Server misconfigured"),
)


def problem_of(exc: TwinopsError) -> Problem:
    """The problem a twinops error is answered with."""
    from controller.app.approval_service import ApprovalRefusedError

    if isinstance(exc, ApprovalRefusedError):
        return Problem(409, "proposal-not-decidable", "The proposal cannot take this decision", str(exc))
    if isinstance(exc, ValueError):
        return Problem(422, "invalid-request", "Invalid request", str(exc))
    for cls, status, slug, title in _MAPPED:
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": 'Bearer realm="twinops"'} if status == 401 else None
            return Problem(status, slug, title, str(exc), headers=headers)
    return Problem(400, "refused", "Request refused", str(exc))


_MEANINGS = {
    401: "Not signed in: no credential, or an unknown, revoked or expired one",
    403: "Signed in, but the role does not allow this; or a session's form without its CSRF token",
    404: "No such thing (the detail names it), or an id prefix that matches several",
    409: "The thing is not in a state that allows this (the detail says what happened)",
    413: "The body is larger than this endpoint takes (the detail says the limit)",
    422: "The request does not validate; invalid-params names each offending field",
    503: "A dependency (Temporal, the database, the audit ledger) is not reachable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring each status as problem details (application/problem+json)."""
    return {status: {"model": ProblemBody, "description": _MEANINGS[status]} for status in statuses}


def _problems_in_openapi(app: FastAPI) -> None:
    """Declare error answers with the media type they are sent with (FastAPI files models under application/json)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                    if status.startswith(("4", "5")) and ref.endswith(("/ProblemBody", "/HTTPValidationError")):
                        content.pop("application/json")
                        content[PROBLEM_JSON] = {"schema": {"$ref": "#/components/schemas/ProblemBody"}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ProblemBody" not in components:  # no route declared one: still name the schema the errors use
            body = ProblemBody.model_json_schema(
                by_alias=True, mode="serialization", ref_template="#/components/schemas/{model}"
            )
            components.update(body.pop("$defs", {}))
            components["ProblemBody"] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    """`problem` as an application/problem+json response."""
    headers = dict(problem.headers)
    if problem.retry_after is not None:
        headers.setdefault("Retry-After", str(int(problem.retry_after + 0.999)))
    return JSONResponse(
        problem.body(instance=request.url.path), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as problem details, and say so in its OpenAPI document."""
    _problems_in_openapi(app)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Any:
        return problem_response(exc, request)

    @app.exception_handler(TwinopsError)
    async def _twinops(request: Request, exc: TwinopsError) -> Any:
        problem = problem_of(exc)
        if problem.status >= 500:
            log.error("api.error", path=request.url.path, error=str(exc), status=problem.status)
        return problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        invalid = [(_field(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in exc.errors()]
        names = ", ".join(n for n, _ in invalid) or "the request"
        problem = Problem(422, "invalid-request", "Invalid request", f"invalid: {names}", invalid=invalid)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated", 403: "forbidden"}.get(
            exc.status_code, f"http-{exc.status_code}"
        )
        detail = str(exc.detail) if exc.detail else ""
        if exc.status_code == 404 and detail in ("", "Not Found"):
            detail = f"no such resource: {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        problem = Problem(exc.status_code, slug, detail or slug.replace("-", " "), detail, headers=headers)
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Any:
        log.exception("api.unexpected_error", path=request.url.path)
        problem = Problem(500, "internal-error", "Internal error", "the server failed; the error is in its log")
        return problem_response(problem, request)
