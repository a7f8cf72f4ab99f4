"""The playbook runs pages: the runs, newest first, and one run's report.

A run's page embeds the report's body as `controller.app.playbook_reports` renders it for
every format, with each remediation linked to its trail page; `/playbook-runs/{id}/report.html`
downloads the same report as one self-contained file to keep or mail. Any signed-in user
(viewer and up) reads them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from controller.api.context import context_of
from controller.api.web.render import PAGE_TAG, PageCaller, render, security_headers
from controller.app.playbook_reports import render_html, render_html_body, run_summary
from workflows.playbook_contracts import PlaybookRunReport

__all__ = ["router"]

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

RUNS_SHOWN = 50


def trail_url(proposal_id: str) -> str:
    """The web UI's trail page of a remediation (`controller.api.web.trail`)."""
    return f"/remediations/{quote(proposal_id, safe='')}/trail"


def _counts(report: PlaybookRunReport) -> list[tuple[str, int]]:
    return [(outcome.replace("_", " "), n) for outcome, n in sorted(report.counts().items())]


@router.get("/playbook-runs", response_class=HTMLResponse)
async def runs_page(
    request: Request,
    who: PageCaller,
    playbook: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Playbook runs, newest first: playbook, version, status, when, and what became of the nodes."""
    chosen = (playbook or "").strip() or None
    reports = await context_of(request).playbook_runs().list(chosen, RUNS_SHOWN)
    rows: list[dict[str, Any]] = [
        {**run_summary(r).model_dump(), "counts": _counts(r), "url": f"/playbook-runs/{quote(r.run_id, safe='')}"}
        for r in reports
    ]
    return render(request, "playbook_runs.html.j2", {"rows": rows, "playbook": chosen}, caller=who)


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
