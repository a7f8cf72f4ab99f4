"""A remediation's decision trail, with a "verify" button that checks every event in the browser.

The page lists the events in log order. Its script (static/verify.js) fetches the signed
head and each event's inclusion proof from the JSON API, recomputes each entry's leaf hash
and the RFC 6962 root from the audit path with WebCrypto's SHA-256, checks the checkpoint's
Ed25519 signature, and marks each event verified or failed: the browser trusts the server
for the events, not for the arithmetic.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from controller.api.context import context_of
from controller.api.web.render import PAGE_TAG, PageCaller, render
from controller.core.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

# Payload fields worth a column: what a human said, and the step or rule it concerns.
_SAID = ("comment", "reason", "summary", "rationale", "message")


def _said(payload: dict[str, Any]) -> str:
    for key in _SAID:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


@router.get("/remediations/{remediation_id}/trail", response_class=HTMLResponse)
async def trail_page(request: Request, remediation_id: str, who: PageCaller) -> Response:
    """The events of one remediation in log order, each verifiable against the signed head."""
    ctx = context_of(request)
    reader = await asyncio.to_thread(ctx.ledger)
    records = await asyncio.to_thread(reader.trail_sync, remediation_id)
    if not records:
        raise NotFoundError(f"no audit events for remediation {remediation_id!r}")
    events = [
        {
            "seq": r.seq,
            "event_id": r.event_id,
            "time": r.time,
            "kind": r.kind.value,
            "actor": r.actor,
            "said": _said(r.payload),
            "targets": ", ".join(r.target_nodes),
        }
        for r in records
    ]
    return render(
        request,
        "trail.html.j2",
        {"remediation_id": remediation_id, "events": events},
        caller=who,
    )
