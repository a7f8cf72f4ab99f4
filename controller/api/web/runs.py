"""The playbook runs pages: the runs, newest first, one run's report, and pre-approving the next run.

A run's page embeds the report's body as `controller.app.playbook_reports` renders it for
every format, with each remediation linked to its trail page; `/playbook-runs/{id}/report.html`
downloads the same report as one self-contained file to keep or mail. Any signed-in user
(viewer and up) reads them.

The runs page also lists the pre-approvals (who approved, which run used each) and, for
approvers, a form that pre-approves a scheduled run through the one `PreapprovalService`, as
`twinops playbooks preapprove` and the JSON API do. A taken pre-approval redirects back to the
page (post-redirect-get), which names it from the store; a refused one answers the page again
with the form as typed and the reason beside the field.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agents.playbook import PlaybookError
from agents.playbook.model import NAME_PATTERN
from controller.adapters.identity import Role, require
from controller.adapters.preapprovals import PreapprovalRecord
from controller.api.auth import Caller
from controller.api.context import context_of
from controller.api.v1.preapprovals import playbook_problem, refused_field, reworded
from controller.api.web.render import PAGE_TAG, PageCaller, render, security_headers
from controller.app.playbook_reports import render_html, render_html_body, run_summary
from controller.app.playbooks import playbook_files
from controller.app.preapprovals import PreapprovalError
from controller.core.errors import AuthorizationError, ConflictError, NotFoundError
from workflows.playbook_contracts import PlaybookRunReport

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

RUNS_SHOWN = 50
MAX_TEXT = 2000
FORM_FIELDS = ("playbook", "run_at", "expires_at", "comment")
# The service names the times by the CLI's options; the form by its own fields, whose labels say UTC.
_FORM_FIELDS = {"--run-at": "run_at", "--expires": "expires_at"}
_FORM_WORDS = {"--run-at": "run at", "--expires": "expires"}


def trail_url(proposal_id: str) -> str:
    """The web UI's trail page of a remediation (`controller.api.web.trail`)."""
    return f"/remediations/{quote(proposal_id, safe='')}/trail"


def _counts(report: PlaybookRunReport) -> list[tuple[str, int]]:
    return [(outcome.replace("_", " "), n) for outcome, n in sorted(report.counts().items())]


def run_url(run_id: str) -> str:
    """The page of one playbook run."""
    return f"/playbook-runs/{quote(run_id, safe='')}"


def _preapproval_row(record: PreapprovalRecord, now: datetime) -> dict[str, Any]:
    grant = record.grant
    return {
        "id": grant.id,
        "playbook": grant.playbook,
        "version": grant.version,
        "run_at": grant.run_at,
        "expires_at": grant.expires_at,
        "approvals": [(a.principal.id, a.text) for a in grant.approvals],
        "status": record.status(now),
        "used_by_run": record.used_by_run,
        "used_url": run_url(record.used_by_run) if record.used_by_run else None,
    }


async def _done(request: Request, who: Caller, preapproval_id: str | None) -> dict[str, Any] | None:
    """The pre-approval the caller just gave (the redirect names it), for the page's result message."""
    if not preapproval_id:
        return None
    try:
        record = await asyncio.to_thread(context_of(request).preapprovals().store.get_sync, preapproval_id)
    except NotFoundError:
        return None
    row = _preapproval_row(record, datetime.now(UTC))
    # Only the approver's own result: an id in a link someone sent is not their confirmation.
    return row if any(by == who.principal.id for by, _ in row["approvals"]) else None


async def _page(
    request: Request,
    who: Caller,
    playbook: str | None = None,
    *,
    done: dict[str, Any] | None = None,
    error: str = "",
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    ctx = context_of(request)
    reports = await ctx.playbook_runs().list(playbook, RUNS_SHOWN)
    rows: list[dict[str, Any]] = [
        {**run_summary(r).model_dump(), "counts": _counts(r), "url": run_url(r.run_id)} for r in reports
    ]
    now = datetime.now(UTC)
    preapprovals = [_preapproval_row(r, now) for r in await ctx.preapprovals().list(who.principal, playbook)]
    names: list[str] = []
    if who.can(Role.APPROVER):
        names = [p.stem for p in await asyncio.to_thread(playbook_files, ctx.settings.playbooks_dir)]
    return render(
        request,
        "playbook_runs.html.j2",
        {
            "rows": rows,
            "playbook": playbook,
            "preapprovals": preapprovals,
            "playbook_names": names,
            "done": done,
            "error": error,
            "errors": errors or {},
            "typed": typed or {"playbook": playbook or ""},
            "max_text": MAX_TEXT,
        },
        caller=who,
        status=status,
    )


@router.get("/playbook-runs", response_class=HTMLResponse)
async def runs_page(
    request: Request,
    who: PageCaller,
    playbook: Annotated[str | None, Query(max_length=200)] = None,
    preapproved: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Playbook runs, newest first (playbook, version, status, when, what became of the nodes), and pre-approvals."""
    chosen = (playbook or "").strip() or None
    return await _page(request, who, chosen, done=await _done(request, who, preapproved))


def _moment(typed: dict[str, str], name: str, errors: dict[str, str]) -> datetime | None:
    """The form's time `name`: ISO 8601, UTC unless it names a zone; an error beside the field otherwise."""
    text = typed[name]
    if not text:
        errors[name] = "required"
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        errors[name] = f"{text!r} is not a time: write it as 2026-11-21T02:30 (UTC)"
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@router.post("/playbook-runs/preapprovals", response_class=HTMLResponse)
async def preapprove(request: Request, who: PageCaller) -> Response:
    """Pre-approve a scheduled run as the signed-in approver; redirect to the runs page naming the pre-approval."""
    try:
        require(who.principal, Role.APPROVER, "to pre-approve playbook runs")
    except AuthorizationError as exc:
        log.warning("web.denied", principal=who.principal.id, path=request.url.path, reason=str(exc))
        raise
    form = await request.form()
    typed = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
    errors: dict[str, str] = {}
    if not typed["playbook"]:
        errors["playbook"] = "choose a playbook"
    elif not re.fullmatch(NAME_PATTERN, typed["playbook"]):
        # A name, never a path: the service reads <playbooks dir>/<name>.yaml.
        errors["playbook"] = f"{typed['playbook']!r} is not a playbook name"
    run_at, expires_at = _moment(typed, "run_at", errors), _moment(typed, "expires_at", errors)
    if len(typed["comment"]) > MAX_TEXT:
        errors["comment"] = f"at most {MAX_TEXT} characters (this has {len(typed['comment'])})"
    if errors or run_at is None or expires_at is None:
        return await _page(request, who, errors=errors, typed=typed, status=422)
    ctx = context_of(request)
    try:
        record = await ctx.preapprovals().preapprove(
            who.principal, typed["playbook"], run_at, expires_at, typed["comment"]
        )
    except PreapprovalError as exc:
        option = refused_field(exc)
        if option is None:
            return await _page(request, who, error=str(exc), typed=typed, status=422)
        errors[_FORM_FIELDS[option]] = reworded(exc, _FORM_WORDS)
        return await _page(request, who, errors=errors, typed=typed, status=422)
    except PlaybookError as exc:
        problem = playbook_problem(typed["playbook"], exc, ctx.settings.playbooks_dir)
        return await _page(request, who, errors={"playbook": problem.detail}, typed=typed, status=problem.status)
    except ConflictError as exc:
        return await _page(request, who, error=str(exc), typed=typed, status=409)
    target = f"/playbook-runs?preapproved={quote(record.grant.id, safe='')}#preapprovals"
    return RedirectResponse(target, status_code=303, headers=security_headers())


@router.get("/playbook-runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, who: PageCaller) -> Response:
    """One run's report, each remediation linked to its trail."""
    report = await context_of(request).playbook_runs().get(run_id)
    return render(
        request,
        "playbook_run.html.j2",
        {
            "run_id": report.run_id,
            "playbook": report.playbook,
            "body": render_html_body(report, trail_url),
            "quoted_id": quote(report.run_id, safe=""),
        },
        caller=who,
    )


@router.get("/playbook-runs/{run_id}/report.html")
async def run_download(request: Request, run_id: str, who: PageCaller) -> Response:
    """The report as one self-contained HTML file (inline CSS, no script), downloaded rather than shown."""
    report = await context_of(request).playbook_runs().get(run_id)
    name = quote(f"{report.run_id}.html", safe="")
    site = str(request.base_url).rstrip("/")
    headers = {
        **security_headers(),
        # Its own inline stylesheet, nothing else: the file is for keeping, not for running in this origin.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
    }
    # Absolute links: the file is opened from a disk or a mail, not from this site.
    return HTMLResponse(render_html(report, lambda proposal_id: site + trail_url(proposal_id)), headers=headers)
