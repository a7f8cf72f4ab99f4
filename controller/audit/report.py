"""A remediation's decision trail as one self-contained HTML page (no external assets), with inclusion proofs."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from controller.audit.ledger import SqlAuditLedger
from controller.audit.proofs import prove_event
from controller.errors import NotFoundError
from workflows.audit import AuditRecord, EventKind

__all__ = ["SECTIONS", "render_report"]

# The auditor's questions, in the order they ask them, and the event kinds that answer each.
SECTIONS: list[tuple[str, tuple[EventKind, ...]]] = [
    ("Evidence", (EventKind.DETECTED,)),
    ("Plan and alternatives", (EventKind.PROPOSED,)),
    ("Policy decision", (EventKind.POLICY_EVALUATED,)),
    (
        "Approvals",
        (EventKind.APPROVAL_REQUESTED, EventKind.APPROVED, EventKind.REJECTED, EventKind.ESCALATED, EventKind.EXPIRED),
    ),
    ("Steps", (EventKind.STEP_STARTED, EventKind.STEP_SUCCEEDED, EventKind.STEP_FAILED)),
    ("Verification", (EventKind.VERIFIED, EventKind.VERIFICATION_FAILED)),
    ("Compensation", (EventKind.COMPENSATION_STARTED, EventKind.COMPENSATED, EventKind.COMPENSATION_FAILED)),
    ("Outcome", (EventKind.COMPLETED, EventKind.CANCELLED)),
]

_env = Environment(
    loader=PackageLoader("controller.audit", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def render_report(ledger: SqlAuditLedger, remediation_id: str) -> str:
    """The HTML report; signs a head first if the newest events are not yet under one."""
    trail = ledger.trail_sync(remediation_id)
    if not trail:
        raise NotFoundError(f"remediation {remediation_id!r}: no audit events")
    head = ledger.publish_head()
    leaves = ledger.leaf_hashes(head.tree_size)
    proofs = {r.event_id: prove_event(ledger, r.event_id, leaves=leaves) for r in trail}
    sections: list[dict[str, Any]] = []
    for title, kinds in SECTIONS:
        events = [r for r in trail if r.kind in kinds]
        sections.append({"title": title, "events": events})
    policy = [r for r in trail if r.kind is EventKind.POLICY_EVALUATED]
    return _env.get_template("report.html.j2").render(
        remediation_id=remediation_id,
        trail=trail,
        sections=sections,
        policy=policy,
        head=head,
        origin=ledger.origin,
        verifier_key=ledger.signer.verifier_key,
        proofs=proofs,
        outcome=_outcome(trail),
    )


def _outcome(trail: list[AuditRecord]) -> str:
    for record in reversed(trail):
        if record.kind is EventKind.COMPLETED:
            return str(record.payload.get("outcome", "completed"))
        if record.kind is EventKind.CANCELLED:
            return "cancelled"
    return "in progress"
