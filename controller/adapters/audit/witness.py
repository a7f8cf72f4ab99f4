"""Witnesses: every signed head copied to places a database rewrite cannot reach.

A signed head proves nothing against someone who holds the key and can rewrite the
database: they re-sign the rewritten log. Copies of the heads kept elsewhere catch
that, because the rewritten log no longer hashes to them (`twinops audit verify
--witness DIR`).

CheckpointWitness   the port: `publish(checkpoint)`, idempotent
WitnessDirectory    one file per checkpoint, `<tree size>.checkpoint`, in a directory an
                    auditor controls (a mount the database host cannot rewrite, a synced bucket)
NotifierWitness     each checkpoint as a notification through the `Notifier` port
WitnessFanout       publishes to several witnesses; a failed publication is retried with the next one
read_witness_dir    the checkpoints kept in a directory, for verification
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import structlog

from controller.adapters.audit.checkpoint import parse_checkpoint
from controller.adapters.audit.verify import KeptCheckpoint
from controller.core.errors import AuditError, LedgerIntegrityError
from workflows.ports import Notification, NotificationKind, Notifier

__all__ = [
    "CheckpointWitness",
    "NotifierWitness",
    "WitnessDirectory",
    "WitnessFanout",
    "read_witness_dir",
]

_log = structlog.get_logger("twinops.audit")
_SUFFIX = ".checkpoint"
_BACKLOG = 1000  # checkpoints kept per witness while it is unreachable; older ones are only in the database


class CheckpointWitness(Protocol):
    """Somewhere a signed checkpoint is kept outside the database. Publishing the same one twice is harmless."""

    def publish(self, checkpoint: str) -> None:
        """Keep `checkpoint` (a signed note); raise when it could not be kept."""
        ...


class WitnessDirectory:
    """Writes each checkpoint to `<dir>/<tree size, 12 digits>.checkpoint`, never overwriting one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"WitnessDirectory({str(self.path)!r})"

    def publish(self, checkpoint: str) -> None:
        """Write `checkpoint` atomically; LedgerIntegrityError if a different one is kept for its size."""
        size = parse_checkpoint(checkpoint).size
        target = self.path / f"{size:012d}{_SUFFIX}"
        if target.exists():
            self._same_or_fork(target, checkpoint)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        temporary = self.path / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with temporary.open("x", encoding="utf-8", newline="") as fh:
                fh.write(checkpoint)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(temporary, target)  # fails if the name exists: a kept checkpoint is never replaced
            except FileExistsError:
                self._same_or_fork(target, checkpoint)
        finally:
            temporary.unlink(missing_ok=True)

    def _same_or_fork(self, target: Path, checkpoint: str) -> None:
        if target.read_text(encoding="utf-8") != checkpoint:
            raise LedgerIntegrityError(
                f"witness {target}: already keeps a different checkpoint for this size "
                "(the log was forked or rewritten since)"
            )


class NotifierWitness:
    """Sends each checkpoint, verbatim, as an `audit_checkpoint` notification (chat history or log pipeline)."""

    def __init__(self, notifier: Notifier, loop: asyncio.AbstractEventLoop) -> None:
        self._notifier = notifier
        self._loop = loop

    def __repr__(self) -> str:
        return f"NotifierWitness({type(self._notifier).__name__})"

    def publish(self, checkpoint: str) -> None:
        """Hand the notification to the event loop (callable from any thread); delivery failures are logged."""
        parsed = parse_checkpoint(checkpoint)
        notification = Notification(
            kind=NotificationKind.AUDIT_CHECKPOINT,
            remediation_id="",
            title=f"Audit checkpoint: {parsed.size} events",
            text=checkpoint,
            fields={"origin": parsed.origin, "tree size": str(parsed.size), "root hash": parsed.root.hex()},
        )
        future = asyncio.run_coroutine_threadsafe(self._notifier.notify(notification), self._loop)
        future.add_done_callback(lambda done: _log_delivery(done, parsed.size))


def _log_delivery(done: Future[None], size: int) -> None:
    if not done.cancelled() and done.exception() is not None:
        _log.error("audit.witness_failed", witness="notifier", tree_size=size, error=str(done.exception()))


class WitnessFanout:
    """Publishes each checkpoint to every witness; one that fails keeps a backlog retried on the next publish."""

    def __init__(self, witnesses: Iterable[CheckpointWitness] = ()) -> None:
        self._backlog: dict[CheckpointWitness, list[str]] = {w: [] for w in witnesses}

    def __bool__(self) -> bool:
        return bool(self._backlog)

    def add(self, witness: CheckpointWitness) -> None:
        """Publish to `witness` from now on."""
        self._backlog.setdefault(witness, [])

    def remove(self, witness: CheckpointWitness) -> None:
        """Stop publishing to `witness`."""
        self._backlog.pop(witness, None)

    def publish(self, checkpoint: str | None = None) -> None:
        """Publish `checkpoint` (and any backlog) everywhere; never raises: the head is already committed."""
        for witness, backlog in list(self._backlog.items()):
            if checkpoint is not None:
                backlog.append(checkpoint)
                del backlog[:-_BACKLOG]
            while backlog:
                try:
                    witness.publish(backlog[0])
                except LedgerIntegrityError as exc:
                    # Not retried: the witness holds evidence that contradicts this head.
                    _log.error("audit.witness_conflict", witness=repr(witness), error=str(exc))
                except Exception as exc:  # an unreachable witness must not stop appends; retried next time
                    _log.error("audit.witness_failed", witness=repr(witness), error=str(exc))
                    break
                backlog.pop(0)


def read_witness_dir(path: Path) -> list[KeptCheckpoint]:
    """Every `*.checkpoint` in `path`, by name; AuditError naming the path if it is not a readable directory."""
    if not path.is_dir():
        raise AuditError(f"witness directory {path}: does not exist or is not a directory")
    kept = []
    for file in sorted(path.glob(f"*{_SUFFIX}")):
        try:
            kept.append(KeptCheckpoint(file.read_text(encoding="utf-8"), str(file)))
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditError(f"witness checkpoint {file}: {exc}") from None
    return kept
