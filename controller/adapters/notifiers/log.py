"""The log notifier: one structlog event `notification` per notification (the embedded default)."""

from __future__ import annotations

from typing import Final

import structlog

from workflows.ports import Notification

__all__ = ["LogNotifier"]

_LOG_METHOD: Final = {"info": "info", "warning": "warning", "critical": "error"}

_log = structlog.get_logger(__name__)


class LogNotifier:
    """Writes each notification as one structlog event `notification` with all its fields.

    Severity maps to the log level (critical -> error), so log-based alerting can pick it up.
    """

    async def notify(self, notification: Notification) -> None:
        """Log `notification`; never fails."""
        log = getattr(_log, _LOG_METHOD[notification.severity])
        log(
            "notification",
            kind=notification.kind.value,
            remediation_id=notification.remediation_id,
            title=notification.title,
            text=notification.text,
            severity=notification.severity,
            fields=dict(notification.fields),
        )
