"""The fan-out notifier: several notifiers at once; delivery is at least once to each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from workflows.ports import Notification, Notifier, NotifierError

__all__ = ["FanoutNotifier"]


class FanoutNotifier:
    """Delivers to every notifier concurrently; raises once after trying all if any failed."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = tuple(notifiers)

    async def notify(self, notification: Notification) -> None:
        """Notify all; one failure does not stop the others from being told."""
        results = await asyncio.gather(*(n.notify(notification) for n in self.notifiers), return_exceptions=True)
        failures = [(n, r) for n, r in zip(self.notifiers, results, strict=True) if isinstance(r, BaseException)]
        if not failures:
            return
        for _, error in failures:
            if not isinstance(error, Exception):
                raise error  # cancellation and the like are not delivery failures
        permanent = all(getattr(error, "permanent", False) for _, error in failures)
        message = f"{len(failures)} of {len(self.notifiers)} notifiers failed: " + "; ".join(
            f"{n!r}: {error}" for n, error in failures
        )
        raise NotifierError(message, permanent=permanent) from failures[0][1]
