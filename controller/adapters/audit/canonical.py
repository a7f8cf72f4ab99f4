"""Canonical bytes of a log entry: what the Merkle leaf hashes.

The encoding is the JSON Canonicalization Scheme of RFC 8785 restricted to the
data we log: object keys sorted, no insignificant whitespace, UTF-8 (non-ASCII
characters as themselves, not escaped), NaN and infinities refused. It differs from
full RFC 8785 in two corners we avoid rather than implement: keys are sorted by
code point rather than UTF-16 unit (identical unless keys mix astral and high-BMP
characters), and floats use Python's shortest round-trip `repr` (identical to
ECMAScript's except for exponents, e.g. `1e+16` vs `1e16`). Any verifier that
re-serializes with Python's `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` reproduces our bytes exactly; the export also carries each
entry's leaf hash so a verifier in another language can hash the stored bytes.

Times are fixed-width UTC strings (`2026-11-21T22:00:00.000000Z`), so their string
order is their time order in every database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from workflows.audit import AuditEventInput

__all__ = ["ENTRY_FIELDS", "canonical_json", "entry_bytes", "entry_fields", "format_time", "parse_time"]

# Every column that an auditor relies on is inside the leaf, seq included, so moving a
# row to another position changes its hash just like editing it does.
ENTRY_FIELDS = (
    "seq",
    "event_id",
    "time",
    "remediation_id",
    "workflow_id",
    "run_id",
    "actor",
    "kind",
    "target_nodes",
    "payload",
)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN/inf rejected."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def format_time(value: datetime) -> str:
    """A timezone-aware datetime as the fixed-width UTC string stored and hashed."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def entry_fields(event: AuditEventInput, seq: int) -> dict[str, Any]:
    """The JSON object one log entry is: the event at position `seq`."""
    return {
        "seq": seq,
        "event_id": event.event_id,
        "time": format_time(event.time),
        "remediation_id": event.remediation_id,
        "workflow_id": event.workflow_id,
        "run_id": event.run_id,
        "actor": event.actor,
        "kind": event.kind.value,
        "target_nodes": list(event.target_nodes),
        "payload": event.payload,
    }


def entry_bytes(fields: dict[str, Any]) -> bytes:
    """The leaf data of an entry given as `entry_fields` returns it (extra keys ignored)."""
    return canonical_json({name: fields[name] for name in ENTRY_FIELDS})
