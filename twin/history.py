"""Snapshot histories: JSON Lines of twin.v1 snapshots, oldest first, one twin."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twinops import TwinopsError


class HistoryError(TwinopsError, ValueError):
    """A history file that is not one twin's snapshots in time order; names the line."""


def parse_history(lines: Iterable[str | bytes], name: str = "history") -> list[Snapshot]:
    """Validate every line (text, or UTF-8 bytes), then require one twin id and strictly increasing `observed_at`."""
    snaps: list[Snapshot] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            snap = parse_snapshot(line)
        except SnapshotError as exc:
            raise HistoryError(f"{name} line {number}: {exc}") from exc
        if snaps:
            prev = snaps[-1]
            if snap.twin_id != prev.twin_id:
                raise HistoryError(
                    f"{name} line {number}: twin_id {snap.twin_id!r} differs from {prev.twin_id!r} (mixed twins)"
                )
            if snap.observed_at <= prev.observed_at:
                raise HistoryError(
                    f"{name} line {number}: observed_at {snap.observed_at.isoformat()} is not after "
                    f"{prev.observed_at.isoformat()} (out of order)"
                )
        snaps.append(snap)
    return snaps


def read_history(path: Path) -> list[Snapshot]:
    """Read and validate a JSON Lines history file (each line is decoded on its own, so a bad byte names its line)."""
    with path.open("rb") as fh:
        return parse_history(fh, name=str(path))


def write_history(path: Path, snapshots: Iterable[Snapshot]) -> int:
    """Write snapshots as JSON Lines; returns how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for snap in snapshots:
            fh.write(snap.to_json() + "\n")
            count += 1
    return count
