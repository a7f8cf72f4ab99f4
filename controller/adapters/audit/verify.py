"""Verification of a log, from the database or from an export: same code, same findings.

Every entry's leaf is recomputed from its content (seq included) and the tree is
rebuilt; every signed head must carry a valid signature and equal the recomputed
root at its size. The first problem names the sequence number and what is wrong.
An attacker who rewrites rows *and* their leaf hashes cannot forge the signed
heads, so that shows up as a head mismatch bounded by the last good head.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from controller.adapters.audit.canonical import entry_bytes, format_time
from controller.adapters.audit.checkpoint import NoteVerifier, parse_checkpoint
from controller.adapters.audit.merkle import Frontier, leaf_hash
from controller.core.errors import LedgerIntegrityError

__all__ = [
    "HeadRecord",
    "KeptCheckpoint",
    "Problem",
    "ProblemKind",
    "VerificationReport",
    "kept_heads",
    "require_coverage",
    "verify_log",
]

ProblemKind = Literal[
    "edited", "missing", "reordered", "duplicate", "forged_head", "head_mismatch", "malformed", "unsigned"
]
_HEX64 = re.compile(r"[0-9a-f]{64}")
# On a leaf mismatch, look this far either side for the position the row was written at.
_REORDER_WINDOW = 50_000


@dataclass(frozen=True)
class HeadRecord:
    """A stored tree head as read from a table row or an export line; `source` names a kept copy's origin."""

    tree_size: int
    root_hash: str
    time: str
    checkpoint: str
    source: str = ""


@dataclass(frozen=True)
class KeptCheckpoint:
    """A signed checkpoint an auditor kept outside the log, and where it was kept (a file, a message)."""

    text: str
    source: str


def kept_heads(kept: Sequence[str | KeptCheckpoint]) -> list[HeadRecord]:
    """Kept checkpoints as heads to check the log against; an unparseable one becomes a head that fails."""
    heads = []
    for number, item in enumerate(kept, start=1):
        text, source = (item, f"#{number}") if isinstance(item, str) else (item.text, item.source)
        try:
            c = parse_checkpoint(text)
        except LedgerIntegrityError:
            heads.append(HeadRecord(-1, "", "", text, source))  # verify_log reports it as a bad signed head
            continue
        heads.append(HeadRecord(c.size, c.root.hex(), format_time(c.time), text, source))
    return heads


def _label(head: HeadRecord) -> str:
    return f"kept checkpoint {head.source}: " if head.source else ""


@dataclass(frozen=True)
class Problem:
    """One finding. `exact` is False when the seq is only the start of the range a head vouches for."""

    seq: int | None
    kind: ProblemKind
    message: str
    exact: bool = True


@dataclass
class VerificationReport:
    """What verification found."""

    events: int = 0
    heads: int = 0
    verified_size: int = 0
    root_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    covered_size: int = 0
    """Entries under the largest head checked against the log, matching or not; the rest no head covers."""
    oldest_uncovered: str | None = None
    """The earliest `time` among the entries no head covers ("" when one is unreadable)."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def unsigned_tail(self) -> int:
        """Entries after the last signed head: consistent, but not yet under a signature."""
        return max(0, self.events - self.verified_size)

    @property
    def first(self) -> Problem | None:
        """The first bad position: exact findings win over a head's range."""
        exact = [p for p in self.problems if p.exact and p.seq is not None]
        if exact:
            return min(exact, key=lambda p: p.seq or 0)
        return self.problems[0] if self.problems else None

    def raise_if_bad(self) -> None:
        """Raise LedgerIntegrityError naming the first problem."""
        first = self.first
        if first is not None:
            where = f"seq {first.seq}: " if first.seq is not None else ""
            raise LedgerIntegrityError(f"{where}{first.kind}: {first.message}")


def _find_original_seq(entry: dict[str, Any], stored: str, seq: int, size: int | None) -> int | None:
    limit = size if size is not None else seq + _REORDER_WINDOW
    for delta in range(1, _REORDER_WINDOW):
        for candidate in (seq - delta, seq + delta):
            if 0 <= candidate < limit and leaf_hash(entry_bytes({**entry, "seq": candidate})).hex() == stored:
                return candidate
    return None


def verify_log(
    entries: Iterable[dict[str, Any]],
    heads: Iterable[HeadRecord],
    verifier: NoteVerifier,
    origin: str,
    *,
    size_hint: int | None = None,
) -> VerificationReport:
    """Check entries (dicts of the entry fields plus `leaf_hash`, in seq order) against signed heads.

    `size_hint` (the number of entries, when known) bounds the search for where a moved row came from.
    """
    report = VerificationReport()
    pending: list[tuple[int, bytes, HeadRecord]] = []
    for head in heads:
        report.heads += 1
        try:
            checkpoint = verifier.verify(head.checkpoint)
        except LedgerIntegrityError as exc:
            report.problems.append(
                Problem(head.tree_size, "forged_head", f"{_label(head)}head at size {head.tree_size}: {exc}")
            )
            continue
        if (checkpoint.size, checkpoint.root.hex(), format_time(checkpoint.time)) != (
            head.tree_size,
            head.root_hash,
            head.time,
        ):
            report.problems.append(
                Problem(
                    head.tree_size,
                    "forged_head",
                    f"{_label(head)}head at size {head.tree_size}: fields differ from its signed checkpoint",
                )
            )
            continue
        if checkpoint.origin != origin:
            report.problems.append(
                Problem(
                    head.tree_size,
                    "forged_head",
                    f"{_label(head)}head at size {head.tree_size}: origin {checkpoint.origin!r} is not {origin!r}",
                )
            )
            continue
        # Two heads for one size (the log's and a kept copy) are both checked against the
        # recomputed tree, so the one that no longer matches is the one named.
        pending.append((head.tree_size, checkpoint.root, head))
    pending.sort(key=lambda item: item[0])  # stable: the log's own head before kept copies of its size
    queue = deque(pending)

    frontier = Frontier()
    expected = 0
    last_good = 0
    searched = False

    def settle_heads() -> None:
        nonlocal last_good
        if not queue or queue[0][0] != frontier.size:
            return
        size, computed = frontier.size, frontier.root()
        report.covered_size = size
        report.oldest_uncovered = None
        while queue and queue[0][0] == size:
            _, root, head = queue.popleft()
            if computed == root:
                report.verified_size = size
                report.root_hash = root.hex()
                continue
            report.problems.append(
                Problem(
                    last_good,
                    "head_mismatch",
                    f"{_label(head)}the log's first {size} entries do not hash to the signed head at size {size}: "
                    f"entries between seq {last_good} and {size - 1} were altered, reordered, removed or replaced",
                    exact=False,
                )
            )
        last_good = size

    settle_heads()
    for entry in entries:
        report.events += 1
        try:
            seq = entry["seq"]
            stored = entry["leaf_hash"]
            computed = leaf_hash(entry_bytes(entry))
        except (KeyError, TypeError, ValueError) as exc:
            report.problems.append(
                Problem(expected, "malformed", f"entry after seq {expected - 1} is unreadable: {exc}")
            )
            expected += 1
            continue
        if not isinstance(seq, int) or isinstance(seq, bool):
            report.problems.append(
                Problem(expected, "malformed", f"entry after seq {expected - 1}: seq is not an integer")
            )
            seq = expected
        if seq > expected:
            report.problems.append(
                Problem(
                    expected, "missing", f"entries {expected}..{seq - 1} are missing ({seq - expected} row(s) removed)"
                )
            )
        elif seq < expected:
            report.problems.append(Problem(seq, "duplicate", f"seq {seq} appears again after seq {expected - 1}"))
        expected = seq + 1
        if not isinstance(stored, str) or not _HEX64.fullmatch(stored):
            report.problems.append(Problem(seq, "malformed", f"seq {seq}: leaf hash is not 64 lowercase hex digits"))
        elif computed.hex() != stored:
            original = None
            if not searched:  # searching is O(window) hashes; do it for the first mismatch only
                searched = True
                original = _find_original_seq(entry, stored, seq, size_hint)
            if original is not None:
                report.problems.append(
                    Problem(
                        seq, "reordered", f"the row at seq {seq} was logged at seq {original} (rows were reordered)"
                    )
                )
            else:
                report.problems.append(
                    Problem(
                        seq,
                        "edited",
                        f"seq {seq} ({entry.get('event_id')!r}): content does not match its leaf hash "
                        "(payload or another column edited after it was logged)",
                    )
                )
        frontier.append(computed)
        when = entry.get("time")
        when = when if isinstance(when, str) else ""
        if report.oldest_uncovered is None or when < report.oldest_uncovered:
            report.oldest_uncovered = when
        settle_heads()
    for size, _, head in queue:
        report.problems.append(
            Problem(
                frontier.size,
                "missing",
                f"{_label(head)}a signed head covers {size} entries but the log holds only {frontier.size} "
                "(entries removed from the end)",
            )
        )
    return report


def require_coverage(report: VerificationReport, *, max_unsigned: int, older_than: datetime | None = None) -> None:
    """Add an `unsigned` problem when entries no signed head covers are not just a fresh tail.

    A tail is fresh when it has at most `max_unsigned` entries and none timed before
    `older_than`. A log with entries and no head at all is never fresh: the first append
    signs a head. Entries behind a head that fails its check are already reported and
    count as covered here.
    """
    uncovered = report.events - report.covered_size
    if uncovered <= 0:
        return
    span = f"entries {report.covered_size}..{report.events - 1}"
    if report.root_hash is None and not any(p.kind == "head_mismatch" for p in report.problems):
        why = "the log has no valid signed head at all (heads deleted or replaced?)"
    elif uncovered > max_unsigned:
        why = f"{uncovered} after the last signed head, where at most {max_unsigned} may wait for one"
    elif older_than is not None and (report.oldest_uncovered or "") < format_time(older_than):
        why = (
            f"the oldest ({report.oldest_uncovered or 'unreadable time'}) is older than a head may take to be signed "
            "(added behind the writers' back, or no writer ran since: `twinops audit head` once known good)"
        )
    else:
        return
    report.problems.append(
        Problem(report.covered_size, "unsigned", f"{span} are not covered by any signed head: {why}", exact=False)
    )
