"""The queue page (what waits for a human, riskiest and soonest due first) and the history page.

The queue's rows come again from `/queue/rows` every few seconds (the page's script swaps
the table body and the count in the tab title), so a new proposal or someone else's
decision shows up without a reload. Both pages read through `controller.api.views`, the
read model the JSON API serves too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from controller.adapters.audit.models import AuditEventRow
from controller.adapters.inbox import approval_inbox
from controller.api import views
from controller.api.context import ApiContext, context_of
from controller.api.problems import Problem
from controller.api.web.render import PAGE_TAG, PageCaller, render, render_fragment, security_headers
from controller.core.errors import AuditError
from workflows.audit import EventKind

__all__ = ["router"]

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

QUEUE_ROWS = 200
HISTORY_ROWS = 50
RISKS = ("critical", "high", "medium", "low")
STATUSES = ("open", "pending", "escalated", "executing", "verifying", "closed", "all")
_AWAITING = frozenset({"pending", "escalated"})
_MAX_FILTER_CHARS = 200


def _filters(request: Request) -> dict[str, str]:
    """The queue's filters from the query string, trimmed; an over-long value is a 422 naming it."""
    found: dict[str, str] = {}
    for name in ("status", "team", "node", "risk"):
        value = (request.query_params.get(name) or "").strip()
        if len(value) > _MAX_FILTER_CHARS:
            raise Problem(
                422,
                "invalid-request",
                "Invalid request",
                f"filter {name!r} is longer than {_MAX_FILTER_CHARS} characters",
                invalid=[(f"query.{name}", "too long")],
            )
        found[name] = value
    found["status"] = found["status"] or "open"
    return found


def _choices(ctx: ApiContext) -> dict[str, list[str]]:
    """Teams and nodes that occur in the inbox, for the filters' suggestions."""
    t = approval_inbox.c
    with ctx.engine.connect() as conn:
        teams = [r[0] for r in conn.execute(select(t.team).distinct().where(t.team.is_not(None)).limit(200))]
        nodes = [r[0] for r in conn.execute(select(t.target).distinct().limit(500))]
    return {"teams": sorted(teams), "nodes": sorted(nodes)}


async def _rows(ctx: ApiContext, filters: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    items = await asyncio.to_thread(
        views.queue,
        ctx,
        status=filters["status"],
        node=filters["node"] or None,
        risk=filters["risk"] or None,
        team=filters["team"] or None,
        limit=QUEUE_ROWS,
    )
    rows = [i.model_dump(mode="json") for i in items]
    return rows, sum(1 for r in rows if r["status"] in _AWAITING)


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request, who: PageCaller) -> Response:
    """The approval queue with its filters."""
    ctx = context_of(request)
    filters = _filters(request)
    (rows, waiting), choices = await asyncio.gather(_rows(ctx, filters), asyncio.to_thread(_choices, ctx))
    return render(
        request,
        "queue.html.j2",
        {
            "rows": rows,
            "waiting": waiting,
            "filters": filters,
            "risks": RISKS,
            "statuses": STATUSES,
            **choices,
        },
        caller=who,
    )


@router.get("/queue/rows", response_class=HTMLResponse)
async def queue_rows(request: Request, who: PageCaller) -> Response:
    """The queue table's body alone, for the page's live update; the waiting count in `X-Twinops-Waiting`."""
    rows, waiting = await _rows(context_of(request), _filters(request))
    body = render_fragment("_queue_rows.html.j2", {"rows": rows})
    return HTMLResponse(body, headers={**security_headers(), "X-Twinops-Waiting": str(waiting)})


def _decisions(ctx: ApiContext, proposal_ids: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """Who decided each proposal, from the audit trail: approvals, the rejection or the cancellation, in order."""
    ids = list(proposal_ids)
    if not ids:
        return {}
    try:
        engine = ctx.ledger().engine
    except AuditError:
        return {}
    table = AuditEventRow.__table__
    kinds = {
        EventKind.APPROVED.value: "approved",
        EventKind.REJECTED.value: "rejected",
        EventKind.CANCELLED.value: "cancelled",
    }
    stmt = (
        select(table.c.remediation_id, table.c.kind, table.c.payload)
        .where(table.c.remediation_id.in_(ids), table.c.kind.in_(list(kinds)))
        .order_by(table.c.seq)
    )
    found: dict[str, list[dict[str, str]]] = {}
    with engine.connect() as conn:
        for remediation_id, kind, raw in conn.execute(stmt):
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {}
            payload = payload if isinstance(payload, dict) else {}
            found.setdefault(remediation_id, []).append(
                {
                    "what": kinds[kind],
                    "by": str(payload.get("by") or "?"),
                    "why": str(payload.get("comment") or payload.get("reason") or ""),
                }
            )
    return found


@router.get("/history", response_class=HTMLResponse)
async def history_page(request: Request, who: PageCaller, cursor: str | None = None) -> Response:
    """Decided proposals, newest first, with the outcome and who decided."""
    ctx = context_of(request)
    page = await asyncio.to_thread(views.list_proposals, ctx, status="closed", cursor=cursor, limit=HISTORY_ROWS)
    rows = [i.model_dump(mode="json") for i in page.items]
    decided = await asyncio.to_thread(_decisions, ctx, [r["proposal_id"] for r in rows])
    for row in rows:
        row["decisions"] = decided.get(row["proposal_id"], [])
    return render(
        request, "history.html.j2", {"rows": rows, "next_cursor": page.next_cursor, "cursor": cursor}, caller=who
    )
