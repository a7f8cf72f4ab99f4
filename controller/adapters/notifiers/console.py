"""The console notifier: one sentence per notification for the person watching `twinops up`."""

from __future__ import annotations

from collections.abc import Callable

from workflows.ports import Notification

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier:
    """Hands each notification to `write` as one sentence: `[warning] title: text (remediation id, if any)`."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    async def notify(self, notification: Notification) -> None:
        """Write the sentence; never fails."""
        n = notification
        text = " ".join(n.text.split())
        about = f" ({n.remediation_id})" if n.remediation_id else ""
        self.write(f"[{n.severity}] {n.title}" + (f": {text}" if text else "") + about)
