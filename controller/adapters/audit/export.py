"""JSON Lines export of the whole ledger, and a verifier that needs nothing but the export (and the public key).

Layout, one canonical JSON object per line (sorted keys, no whitespace, UTF-8):

    {"type":"header","format":"twinops-audit-export/1","origin":...,"verifier_key":...,"events":N,"heads":M}
    {"type":"event", <every hashed field>, "leaf_hash": hex}      N lines, seq 0..N-1
    {"type":"head","tree_size":...,"root_hash":...,"time":...,"checkpoint":<signed note>}   M lines

The verifier refuses any line that is not exactly in canonical form, so no byte of
the file can change without changing what is verified, and refuses an export whose
last head does not cover every event in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import IO, Any

from controller.adapters.audit.canonical import canonical_json
from controller.adapters.audit.checkpoint import NoteVerifier
from controller.adapters.audit.ledger import SqlAuditLedger
from controller.adapters.audit.verify import (
    HeadRecord,
    KeptCheckpoint,
    Problem,
    VerificationReport,
    kept_heads,
    require_coverage,
    verify_log,
)
from controller.core.errors import AuditError

__all__ = ["EXPORT_FORMAT", "verify_export", "write_export"]

EXPORT_FORMAT = "twinops-audit-export/1"


def write_export(ledger: SqlAuditLedger, out: IO[bytes]) -> int:
    """Write the export to `out`; a head is signed first so every event is under a signature. Returns events written."""
    ledger.publish_head()
    heads = ledger.heads()
    size = heads[-1].tree_size if heads else 0
    header = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "origin": ledger.origin,
        "verifier_key": ledger.signer.verifier_key,
        "events": size,
        "heads": len(heads),
    }
    out.write(canonical_json(header) + b"\n")
    written = 0
    for entry in ledger.iter_entries():
        if entry["seq"] >= size:  # appended after our head: the next export carries it
            break
        out.write(canonical_json({"type": "event", **entry}) + b"\n")
        written += 1
    for head in heads:
        line = {
            "type": "head",
            "tree_size": head.tree_size,
            "root_hash": head.root_hash,
            "time": head.time,
            "checkpoint": head.checkpoint,
        }
        out.write(canonical_json(line) + b"\n")
    return written


def _lines(data: bytes, report: VerificationReport) -> Iterator[tuple[int, dict[str, Any]]]:
    if not data.endswith(b"\n"):
        report.problems.append(Problem(None, "malformed", "export does not end with a newline (truncated?)"))
    for number, raw in enumerate(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"), start=1):
        try:
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict) or canonical_json(obj) != raw:
                raise ValueError("not a canonical JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            report.problems.append(Problem(None, "malformed", f"line {number}: {exc}"))
            continue
        yield number, obj


def verify_export(
    data: bytes, verifier: NoteVerifier | None = None, *, kept_checkpoints: Sequence[str | KeptCheckpoint] = ()
) -> VerificationReport:
    """Verify an export. Pass the public key obtained independently; without it the export's own key is
    used, which only proves the export is self-consistent, not who signed it.

    `kept_checkpoints` are signed heads the auditor saved earlier: each must match the
    recomputed tree at its size, which proves the log only grew since (RFC 6962 consistency).
    """
    report = VerificationReport()
    header: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = []
    heads: list[HeadRecord] = []
    for number, obj in _lines(data, report):
        kind = obj.pop("type", None)
        if number == 1 and kind == "header":
            header = obj
        elif kind == "event" and header is not None and not heads:
            entries.append(obj)
        elif kind == "head" and header is not None:
            try:
                if set(obj) != {"tree_size", "root_hash", "time", "checkpoint"}:
                    raise TypeError("unexpected fields")
                heads.append(HeadRecord(**obj))
            except TypeError as exc:
                report.problems.append(Problem(None, "malformed", f"line {number}: bad head ({exc})"))
        else:
            report.problems.append(Problem(None, "malformed", f"line {number}: unexpected {kind!r} line here"))
    if header is None:
        report.problems.append(Problem(None, "malformed", "no header line"))
        return report
    if set(header) != {"format", "origin", "verifier_key", "events", "heads"} or header["format"] != EXPORT_FORMAT:
        report.problems.append(Problem(None, "malformed", f"header: not a {EXPORT_FORMAT} header"))
        return report
    try:
        own = NoteVerifier(str(header["verifier_key"]))
    except AuditError as exc:
        report.problems.append(Problem(None, "malformed", f"header: {exc}"))
        return report
    if verifier is not None and own.verifier_key != verifier.verifier_key:
        report.problems.append(Problem(None, "forged_head", "header: the export names a different signing key"))
    active = verifier or own
    if header["origin"] != active.name:
        report.problems.append(Problem(None, "malformed", f"header: origin {header['origin']!r} is not the key's name"))
    kept = kept_heads(kept_checkpoints)
    found = verify_log(entries, [*heads, *kept], active, str(header["origin"]), size_hint=len(entries))
    found.heads -= len(kept)
    found.problems[:0] = report.problems
    if header["events"] != found.events or header["heads"] != found.heads:
        found.problems.append(
            Problem(
                None,
                "missing",
                f"header announces {header['events']} events and {header['heads']} heads, "
                f"the file holds {found.events} and {found.heads}",
            )
        )
    # An export is written after signing a head for everything in it: any event outside a head was added later.
    if found.heads == 0:
        found.problems.append(Problem(None, "unsigned", "the export has no signed head (head lines removed?)"))
    require_coverage(found, max_unsigned=0)
    return found
