"""A remediation's decision trail as one self-contained HTML page (no external assets), with inclusion proofs.

The page answers the auditor's questions in order: what was found and on which evidence,
which actions were planned with their before / predicted / observed-after values, what the
policy said and why, who approved when under which rule, what ran and what was undone, how
it ended, and the proofs that the trail is the one in the log. Everything is read from the
events the workflows write (`workflows.audit` payloads); a kind this page has no table for is
shown generically, so a new kind never disappears from a report. Numbers are rounded for
reading; the exact values stay in each event's collapsed "raw event" and in its proof.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeGuard

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError

from controller.adapters.audit.ledger import SqlAuditLedger
from controller.adapters.audit.proofs import prove_event
from controller.core.errors import NotFoundError
from twin import Action, describe
from workflows.audit import AuditRecord, EventKind

__all__ = ["fmt_number", "fmt_percent", "render_report", "report_view"]

_APPROVALS = (EventKind.APPROVED, EventKind.REJECTED, EventKind.ESCALATED, EventKind.EXPIRED)
_STEPS = (
    EventKind.STEP_STARTED,
    EventKind.STEP_SUCCEEDED,
    EventKind.STEP_FAILED,
    EventKind.COMPENSATION_STARTED,
    EventKind.COMPENSATED,
    EventKind.COMPENSATION_FAILED,
)
_COMPENSATIONS = (EventKind.COMPENSATION_STARTED, EventKind.COMPENSATED, EventKind.COMPENSATION_FAILED)
_VERIFICATION = (EventKind.VERIFIED, EventKind.VERIFICATION_FAILED)
# Kinds a section below lays out as tables; any other kind goes to "Other events".
_TABULATED = frozenset(
    {
        EventKind.DETECTED,
        EventKind.PROPOSED,
        EventKind.POLICY_EVALUATED,
        EventKind.APPROVAL_REQUESTED,
        EventKind.CANCELLED,
        EventKind.COMPLETED,
        *_APPROVALS,
        *_STEPS,
        *_VERIFICATION,
    }
)
_BAD_OUTCOMES = frozenset({"rolled_back", "failed", "rejected", "expired", "denied", "cancelled"})
_ACTION = TypeAdapter(Action)

_env = Environment(
    loader=PackageLoader("controller.adapters.audit", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_report(ledger: SqlAuditLedger, remediation_id: str) -> str:
    """The HTML report; signs a head first if the newest events are not yet under one."""
    trail = ledger.trail_sync(remediation_id)
    if not trail:
        raise NotFoundError(f"remediation {remediation_id!r}: no audit events")
    head = ledger.publish_head()
    leaves = ledger.leaf_hashes(head.tree_size)
    proofs = {r.event_id: prove_event(ledger, r.event_id, leaves=leaves) for r in trail}
    return _env.get_template("report.html.j2").render(
        remediation_id=remediation_id,
        view=report_view(trail),
        head=head,
        head_time=_when(head.time),
        origin=ledger.origin,
        verifier_key=ledger.signer.verifier_key,
        proofs=[
            {"record": r, "proof": proofs[r.event_id], "json": _json(proofs[r.event_id].model_dump(mode="json"))}
            for r in trail
        ],
    )


def report_view(trail: list[AuditRecord]) -> dict[str, Any]:
    """Everything the page shows, as rows of display strings; pure, so it is tested without a ledger."""
    proposed = _last(trail, EventKind.PROPOSED)
    verification = _last(trail, *_VERIFICATION)
    observed = _dict(verification.payload.get("observed")) if verification else {}
    outcome, summary = _outcome(trail)
    return {
        "outcome": outcome,
        "outcome_class": "good" if outcome == "succeeded" else ("bad" if outcome in _BAD_OUTCOMES else ""),
        "summary": _prose(summary),
        "nodes": sorted({n for r in trail for n in r.target_nodes}),
        "started": _when(trail[0].time),
        "ended": _when(trail[-1].time),
        "proposed": proposed,
        "findings": _findings(trail, proposed),
        "beliefs": _beliefs(proposed),
        "plan": _plan(proposed, observed),
        "policies": [_policy(r) for r in trail if r.kind is EventKind.POLICY_EVALUATED],
        "requests": [_request(r) for r in trail if r.kind is EventKind.APPROVAL_REQUESTED],
        "decisions": [_decision(r) for r in trail if r.kind in _APPROVALS],
        "steps": _steps(trail),
        "verifications": [_verification(r) for r in trail if r.kind in _VERIFICATION],
        "endings": [_ending(r) for r in trail if r.kind in (EventKind.CANCELLED, EventKind.COMPLETED)],
        "others": [_event(r, rows=_flatten(r.payload)) for r in trail if r.kind not in _TABULATED],
        "timeline": [_event(r, raw=_json(r.model_dump(mode="json"))) for r in trail],
    }


# ---- the sections -------------------------------------------------------------------------


def _findings(trail: list[AuditRecord], proposed: AuditRecord | None) -> list[dict[str, Any]]:
    """The proposal's findings, plus those of any `detected` event (the loop itself writes none)."""
    sources: list[tuple[AuditRecord, Any]] = [
        (r, r.payload.get("findings")) for r in trail if r.kind is EventKind.DETECTED
    ]
    if proposed is not None:
        sources.append((proposed, _dict(proposed.payload.get("intention")).get("findings")))
    rows = []
    for record, findings in sources:
        for f in _dicts(findings):
            eta = f.get("eta_seconds")
            rows.append(
                {
                    "seq": record.seq,
                    "node": f.get("node") or "(estate)",
                    "kind": str(f.get("kind", "")).replace("_", " "),
                    "hidden": bool(f.get("hidden")),
                    "utilization": fmt_percent(f.get("demand_utilization")),
                    "target": fmt_percent(f.get("target_utilization")),
                    "eta": "now" if eta is None else f"in {_duration(eta)}",
                    "message": _prose(f.get("message", "")),
                    "evidence": [_evidence(e) for e in _dicts(f.get("evidence"))],
                    "extra": _flatten(f, skip=_FINDING_KEYS),
                }
            )
    return rows


_FINDING_KEYS = frozenset(
    {"node", "kind", "hidden", "demand_utilization", "target_utilization", "eta_seconds", "message", "evidence"}
)


def _beliefs(proposed: AuditRecord | None) -> dict[str, Any]:
    """What the agent believed about each node it used; other shapes of `beliefs` as label/value rows."""
    beliefs = _dict(proposed.payload.get("beliefs")) if proposed else {}
    nodes = _dicts(beliefs.get("nodes"))
    rows = []
    for b in nodes:
        seen = _dict(b.get("observed"))
        notes = [
            text
            for key, text in (("throttled", "throttled"), ("upstream_saturated", "upstream saturated"))
            if b.get(key)
        ]
        notes += [f"{label} {fmt_number(b[key])}/s" for key, label in _SLOPES if b.get(key)]
        rows.append(
            {
                "node": b.get("node", ""),
                "kind": b.get("kind", ""),
                "replicas": f"{_num(b.get('replicas'))} ({_num(b.get('min_replicas'))}–{_num(b.get('max_replicas'))})",
                "capacity": _rps(b.get("capacity")),
                "demand": _rps(b.get("demand")),
                "demand_utilization": fmt_percent(b.get("demand_utilization")),
                "observed_utilization": fmt_percent(seen.get("utilization")),
                "latency": _ms(seen.get("latency_p95_ms")),
                "error_rate": fmt_percent(seen.get("error_rate")),
                "queue": _num(seen.get("queue_depth")),
                "confidence": fmt_percent(b.get("confidence")),
                "notes": ", ".join(notes),
                "evidence": [_evidence(e) for e in _dicts(b.get("evidence"))],
            }
        )
    rest = {k: v for k, v in beliefs.items() if k != "nodes" or not nodes}
    return {"nodes": rows, "other": _flatten(rest)}


_SLOPES = (("demand_slope", "demand trend"), ("external_slope", "external trend"), ("utilization_slope", "util. trend"))


def _plan(proposed: AuditRecord | None, observed: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's actions with before / predicted / observed-after values, its goals, and the alternatives."""
    if proposed is None:
        return None
    payload = proposed.payload
    plan = _dict(payload.get("plan"))
    predicted = _dict(plan.get("predicted")) or _dict(payload.get("predicted"))
    steps = _dicts(plan.get("steps")) or [{"action": a} for a in _dicts(plan.get("actions"))]
    actions = []
    for index, step in enumerate(steps):
        action = _dict(step.get("action"))
        node = str(action.get("node") or action.get("source") or "")
        actions.append(_effect(f"step-{index}", _describe(action), node, predicted, observed, step.get("compensation")))
    acted = {a["node"] for a in actions}
    actions += [
        _effect("", "(no action: predicted effect)", n, predicted, observed, None) for n in predicted if n not in acted
    ]
    return {
        "rationale": _prose(payload.get("rationale", "")),
        "facts": [
            (label, value)
            for label, value in (
                ("plan", plan.get("name")),
                ("summary", plan.get("summary")),
                (
                    "cost",
                    f"{fmt_number(plan['cost_per_hour'])} per hour" if _is_number(plan.get("cost_per_hour")) else None,
                ),
                ("risk", _num(plan.get("risk")) if "risk" in plan else None),
                ("plan hash", plan.get("plan_hash")),
            )
            if value not in (None, "")
        ],
        "actions": actions,
        "goals": [
            {
                "goal": str(g.get("goal", "")).replace("_", " "),
                "met": bool(g.get("met")),
                "violations": [_prose(v) for v in _strings(g.get("violations"))],
            }
            for g in _dicts(plan.get("goals"))
        ],
        "other": _flatten(
            plan,
            skip=frozenset(
                {"name", "summary", "cost_per_hour", "risk", "plan_hash", "predicted", "steps", "goals", "actions"}
            ),
        ),
        "alternatives": [_alternative(a) for a in _dicts(payload.get("alternatives"))],
    }


def _effect(
    step: str, action: str, node: str, predicted: dict[str, Any], observed: dict[str, Any], undo: Any
) -> dict[str, Any]:
    p, o = _dict(predicted.get(node)), _dict(observed.get(node))
    shed = p.get("shed_rps")
    return {
        "step": step,
        "action": action,
        "node": node,
        "replicas": (_num(p.get("replicas_before")), _num(p.get("replicas_after")), _num(o.get("replicas"))),
        "utilization": (
            fmt_percent(p.get("utilization_before")),
            fmt_percent(p.get("utilization_after")),
            fmt_percent(o.get("utilization")),
        ),
        "target": fmt_percent(p.get("target_utilization", o.get("target"))),
        "latency": _ms(o.get("latency_p95_ms")),
        "demand": _rps(p.get("demand_rps")),
        "shed": _rps(shed) if _is_number(shed) and shed > 0 else "",
        "undo": _describe(undo) if isinstance(undo, dict) else "",
    }


def _alternative(alt: dict[str, Any]) -> dict[str, Any]:
    option = _dict(alt.get("option"))
    name = option.get("name") or alt.get("plan") or alt.get("name") or ""
    cost = option.get("cost_per_hour")
    known = {"option", "plan", "name", "lost_because", "rejected_because"}
    return {
        "name": str(name),
        "summary": _prose(option.get("summary", "")),
        "cost": f"{fmt_number(cost)} per hour" if _is_number(cost) else "",
        "why": _prose(alt.get("lost_because") or alt.get("rejected_because") or ""),
        "extra": _flatten({k: v for k, v in alt.items() if k not in known}),
    }


def _policy(record: AuditRecord) -> dict[str, Any]:
    p = record.payload
    decision = _dict(p.get("decision"))
    reasons = [
        {
            "rule": key,
            "code": str(r.get("code", "")),
            "msg": _prose(r.get("msg", "")),
            "details": _flatten(_dict(r.get("details"))),
        }
        for key, items in decision.items()
        for r in _dicts(items)
        if "msg" in r
    ]
    listed = {key for key, items in decision.items() if any("msg" in r for r in _dicts(items))}
    groups = decision.get("approver_groups")
    facts = [
        ("decision", "allow" if p.get("allow") else "deny"),
        ("risk", decision.get("risk")),
        ("required approvals", decision.get("required_approvals")),
        ("approver groups", ", ".join(map(str, groups)) if isinstance(groups, list) else None),
        ("auto-approve", _yes_no(decision.get("auto_approve"))),
        ("engine", p.get("engine") or decision.get("engine")),
        ("bundle revision", p.get("bundle_revision")),
        ("bundle sha256", p.get("bundle_sha256")),
        ("input digest", p.get("input_digest")),
        ("evaluated", _when(record.time)),
    ]
    shown = {
        "allow",
        "risk",
        "required_approvals",
        "approver_groups",
        "auto_approve",
        "engine",
        "bundle_revision",
        "bundle_sha256",
    }
    rest = {k: v for k, v in decision.items() if k not in shown | listed}
    return {
        "seq": record.seq,
        "allow": bool(p.get("allow")),
        "facts": [(k, str(v)) for k, v in facts if v not in (None, "")],
        "reasons": reasons,
        "other": _flatten(rest) + _flatten(_dict(p.get("details")), prefix="details"),
    }


def _request(record: AuditRecord) -> dict[str, Any]:
    p = record.payload
    details = _dict(p.get("details"))
    groups = details.get("approver_groups")
    expires = p.get("expires_at")
    facts = [
        ("requested", _when(record.time)),
        ("approval id", p.get("approval_id")),
        ("approvals required", p.get("required_approvals")),
        ("risk", details.get("risk")),
        ("approver groups", ", ".join(map(str, groups)) if isinstance(groups, list) else None),
        ("expires", _when(datetime.fromisoformat(expires)) if isinstance(expires, str) else None),
    ]
    rest = {k: v for k, v in details.items() if k not in ("risk", "approver_groups")}
    return {
        "facts": [(k, str(v)) for k, v in facts if v not in (None, "")],
        "summary": _prose(p.get("summary", "")),
        "other": _flatten(rest, prefix="details"),
    }


def _decision(record: AuditRecord) -> dict[str, Any]:
    p = record.payload
    details = _dict(p.get("details"))
    if record.kind in (EventKind.APPROVED, EventKind.REJECTED):
        who, rule, comment = p.get("by", ""), p.get("rule", ""), p.get("comment", "")
    elif record.kind is EventKind.ESCALATED:
        who, rule, comment = "system", "", f"escalated to {p.get('to', '?')}: {p.get('reason', '')}"
    else:
        who, rule, comment = "system", "", f"nobody decided in {_duration(p.get('waited_seconds'))}"
    quorum = ""
    if "quorum_met" in details:
        needed = details.get("still_needed")
        quorum = "quorum met" if details["quorum_met"] else f"{_num(needed)} more needed"
    # Signed approvals: the approval service's signature, where the event carries one.
    signed = details.get("signed_decision")
    signature = p.get("signature", details.get("signature"))
    if signature is None and isinstance(signed, dict):
        signature = {"key": signed.get("key_id"), "issued": signed.get("issued_at"), "sig": signed.get("signature")}
    skip = frozenset({"quorum_met", "still_needed", "signature", "signed_decision"})
    return {
        "time": _when(record.time),
        "kind": record.kind.value,
        "actor": record.actor,
        "by": str(who),
        "rule": str(rule),
        "comment": str(comment),
        "quorum": quorum,
        "signature": _flatten(signature)
        if isinstance(signature, dict)
        else ([("", str(signature))] if signature else []),
        "other": _flatten(details, skip=skip),
    }


def _steps(trail: list[AuditRecord]) -> list[dict[str, Any]]:
    """One row per step and per compensation: its start joined with how it ended."""
    rows: list[dict[str, Any]] = []
    running: dict[tuple[bool, str], dict[str, Any]] = {}
    for record in trail:
        if record.kind not in _STEPS:
            continue
        p = record.payload
        undo = record.kind in _COMPENSATIONS
        step = str(p.get("step_id", ""))
        if record.kind in (EventKind.STEP_STARTED, EventKind.COMPENSATION_STARTED):
            row: dict[str, Any] = {
                "compensation": undo,
                "step": step,
                "action": _describe(p.get("action")),
                "started": _when(record.time),
                "finished": "",
                "status": "running",
                "result": "",
                "key": str(p.get("idempotency_key", "")),
            }
            rows.append(row)
            running[(undo, step)] = row
            continue
        ended = running.pop((undo, step), None)
        if ended is None:  # an end without a recorded start: show it anyway
            ended = {"compensation": undo, "step": step, "action": "—", "started": "—", "key": ""}
            rows.append(ended)
        ended["finished"] = _when(record.time)
        ended["status"] = {
            EventKind.STEP_SUCCEEDED: "succeeded",
            EventKind.STEP_FAILED: "failed",
            EventKind.COMPENSATED: "compensated",
            EventKind.COMPENSATION_FAILED: "failed",
        }[record.kind]
        ended["result"] = _step_result(p)
    return rows


def _step_result(p: dict[str, Any]) -> str:
    if "error" in p:
        return _prose(p["error"]) + (" (retryable)" if p.get("retryable") else "")
    result = _dict(p.get("result"))
    parts = [str(result["detail"])] if result.get("detail") else []
    if result.get("applied") is False:
        parts.append("not applied")
    if isinstance(result.get("undo"), dict):
        parts.append(f"undo registered: {_describe(result['undo'])}")
    parts += [f"{k} {v}" for k, v in _flatten(result, skip=frozenset({"applied", "detail", "undo"}))]
    return "; ".join(parts)


def _verification(record: AuditRecord) -> dict[str, Any]:
    p = record.payload
    rows = []
    for node, seen in _dict(p.get("observed")).items():
        o = _dict(seen)
        rows.append(
            {
                "node": node,
                "replicas": _num(o.get("replicas")),
                "utilization": fmt_percent(o.get("utilization")),
                "target": fmt_percent(o.get("target")),
                "latency": _ms(o.get("latency_p95_ms")),
                "extra": _flatten(o, skip=frozenset({"replicas", "utilization", "target", "latency_p95_ms"})),
            }
        )
    return {
        "time": _when(record.time),
        "met": record.kind is EventKind.VERIFIED,
        "reason": _prose(p.get("reason", "")),
        "nodes": rows,
        "other": _flatten(p, skip=frozenset({"reason", "observed", "goal"})),
    }


def _ending(record: AuditRecord) -> dict[str, Any]:
    p = record.payload
    if record.kind is EventKind.CANCELLED:
        return {
            "time": _when(record.time),
            "outcome": "cancelled",
            "summary": _prose(f"by {p.get('by', '?')}: {p.get('reason', '')}"),
        }
    return {"time": _when(record.time), "outcome": str(p.get("outcome", "")), "summary": _prose(p.get("summary", ""))}


def _event(record: AuditRecord, **extra: Any) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "time": _when(record.time),
        "kind": record.kind.value,
        "actor": record.actor,
        "event_id": record.event_id,
        "leaf_hash": record.leaf_hash,
        "nodes": ", ".join(record.target_nodes),
        **extra,
    }


def _outcome(trail: list[AuditRecord]) -> tuple[str, str]:
    for record in reversed(trail):
        if record.kind is EventKind.COMPLETED:
            return str(record.payload.get("outcome", "completed")), str(record.payload.get("summary", ""))
        if record.kind is EventKind.CANCELLED:
            return "cancelled", str(record.payload.get("reason", ""))
    return "in progress", ""


# ---- formatting ---------------------------------------------------------------------------


def fmt_number(value: Any) -> str:
    """A number for reading: at most three significant digits after the point, never an exponent above 0.001."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return "—" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    size = abs(value)
    if size < 0.001:
        return f"{value:.2g}"
    decimals = min(3, max(0, 2 - math.floor(math.log10(size))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_percent(value: Any) -> str:
    """A fraction (0.727) as a percentage (72.7%); anything not a number as `fmt_number` shows it."""
    return f"{fmt_number(value * 100)}%" if _is_number(value) else fmt_number(value)


def _flatten(value: Any, *, prefix: str = "", skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Nested payload data as (label, display string) rows: keys joined by dots, numbers rounded."""
    rows: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in skip or item in ({}, [], None, ""):
                continue
            rows += _flatten(item, prefix=f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            rows += _flatten(item, prefix=f"{prefix}[{i}]")
    elif isinstance(value, list):
        rows.append((prefix, ", ".join(_scalar(prefix, v) for v in value)))
    else:
        rows.append((prefix, _scalar(prefix, value)))
    return rows


def _prose(text: Any) -> str:
    """Free text from a payload (a message, a summary) with its long decimals rounded like every other number."""
    return _LONG_DECIMAL.sub(lambda m: fmt_number(float(m.group())), str(text))


_LONG_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d{4,}(?!\.?\d)")


def _scalar(key: str, value: Any) -> str:
    last = key.rsplit(".", 1)[-1]
    if _is_number(value) and ("utilization" in last or last in ("error_rate", "target")):
        return fmt_percent(value)
    if _is_number(value) and last.endswith("_ms"):
        return _ms(value)
    return fmt_number(value)


def _describe(action: Any) -> str:
    if not isinstance(action, dict) or not action:
        return "—"
    try:
        return describe(_ACTION.validate_python(action)).replace(" -> ", " → ")
    except ValidationError:
        fields = ", ".join(f"{k} {v}" for k, v in _flatten(action, skip=frozenset({"type"})))
        return f"{action.get('type', 'action')} {fields}".strip()


def _evidence(item: dict[str, Any]) -> str:
    source = item.get("source")
    statement = _prose(item.get("statement", "")) or ", ".join(f"{k} {v}" for k, v in _flatten(item))
    return f"{source}: {statement}" if source else statement


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: Any) -> str:
    if not _is_number(seconds):
        return "—"
    if seconds >= 90 * 60:
        return f"{fmt_number(seconds / 3600)} h"
    if seconds >= 90:
        return f"{fmt_number(seconds / 60)} min"
    return f"{fmt_number(seconds)} s"


def _num(value: Any) -> str:
    return fmt_number(value) if value is not None else "—"


def _rps(value: Any) -> str:
    return f"{fmt_number(value)} rps" if _is_number(value) else "—"


def _ms(value: Any) -> str:
    return f"{fmt_number(value)} ms" if _is_number(value) else "—"


def _yes_no(value: Any) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else ([] if value is None else [str(value)])


def _last(trail: Iterable[AuditRecord], *kinds: EventKind) -> AuditRecord | None:
    found = None
    for record in trail:
        if record.kind in kinds:
            found = record
    return found


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
