"""Notifiers: the adapters behind `workflows.ports.Notifier` that tell humans.

LogNotifier       one structlog event `notification` (the embedded default)               [log]
ConsoleNotifier   one sentence for the person watching `twinops up`                        [console]
WebhookNotifier   a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)  [webhook]
FanoutNotifier    several of the above at once                                             [fanout]
make_notifier     picks one from settings (`TWINOPS_NOTIFIER`)                             [factory]

A notifier raises `NotifierError` when delivery fails, so the activity retries it.
Delivery is therefore at least once: a retried fan-out may repeat a message to a target that
already had it, which is better than an escalation nobody saw.
"""

from __future__ import annotations

from controller.adapters.notifiers.console import ConsoleNotifier
from controller.adapters.notifiers.factory import make_notifier
from controller.adapters.notifiers.fanout import FanoutNotifier
from controller.adapters.notifiers.log import LogNotifier
from controller.adapters.notifiers.webhook import SEVERITY_EMOJI, WebhookNotifier, slack_body

__all__ = [
    "SEVERITY_EMOJI",
    "ConsoleNotifier",
    "FanoutNotifier",
    "LogNotifier",
    "WebhookNotifier",
    "make_notifier",
    "slack_body",
]
