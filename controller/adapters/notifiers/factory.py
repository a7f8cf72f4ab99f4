"""Choosing the notifier from settings (`TWINOPS_NOTIFIER`): the log, or the log and a webhook."""

from __future__ import annotations

from controller.adapters.notifiers.fanout import FanoutNotifier
from controller.adapters.notifiers.log import LogNotifier
from controller.adapters.notifiers.webhook import WebhookNotifier
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from workflows.ports import Notifier

__all__ = ["make_notifier"]


def make_notifier(settings: Settings) -> Notifier:
    """The notifier `settings.notifier` names; a webhook notifier also logs, so the log is complete."""
    if settings.notifier == "log":
        return LogNotifier()
    if not settings.notifier_url:
        raise ConfigurationError("notifier 'webhook' needs TWINOPS_NOTIFIER_URL")
    return FanoutNotifier([LogNotifier(), WebhookNotifier(settings.notifier_url, settings.notifier_timeout_seconds)])
