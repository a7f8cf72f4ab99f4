"""Notifiers: the adapters behind `workflows.ports.Notifier` that tell humans.

LogNotifier       one structlog event `notification` (the embedded default)
ConsoleNotifier   one sentence for the person watching `twinops up`
WebhookNotifier   a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)
FanoutNotifier    several of the above at once
make_notifier     picks one from settings (`TWINOPS_NOTIFIER`)

A notifier raises `NotifierError` when delivery fails, so the activity retries it.
Delivery is therefore at least once: a retried fan-out may repeat a message to a target that
already had it, which is better than an escalation nobody saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx
import structlog

from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from workflows.ports import Notification, Notifier, NotifierError

__all__ = [
    "ConsoleNotifier",
    "FanoutNotifier",
    "LogNotifier",
    "WebhookNotifier",
    "make_notifier",
    "slack_body",
]

SEVERITY_EMOJI: Final = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

# Slack Block Kit limits; beyond them Slack rejects the whole message with 400 invalid_blocks.
_HEADER_MAX: Final = 150
_SECTION_TEXT_MAX: Final = 3000
_FIELD_TEXT_MAX: Final = 2000
_FIELDS_PER_SECTION: Final = 10
_BLOCKS_MAX: Final = 50

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


def _escape(text: str) -> str:
    # Slack mrkdwn treats these three as control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(notification: Notification) -> dict[str, Any]:
    """The Slack-compatible JSON body for `notification`: `text` fallback plus Block Kit `blocks`.

    Blocks: a header (severity emoji + title), a section with the text as mrkdwn, sections of
    up to ten fields each, and a context line with severity, kind and remediation id.
    """
    n = notification
    emoji = SEVERITY_EMOJI[n.severity]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {n.title}", _HEADER_MAX), "emoji": True},
        },
    ]
    if n.text:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(n.text), _SECTION_TEXT_MAX)}}
        )
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{_escape(name)}*\n{_escape(value)}", _FIELD_TEXT_MAX)}
        for name, value in n.fields.items()
    ]
    # Keep room for the header, text and context blocks.
    fields = fields[: _FIELDS_PER_SECTION * (_BLOCKS_MAX - 3)]
    for start in range(0, len(fields), _FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + _FIELDS_PER_SECTION]})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{emoji} *{n.severity}* · {n.kind.value} · remediation `{_escape(n.remediation_id)}`",
                }
            ],
        }
    )
    # `text` is what notifications, screen readers and clients without Block Kit show.
    fallback = f"[{n.severity.upper()}] {n.title}" + (f": {n.text}" if n.text else "")
    return {"text": _escape(fallback), "blocks": blocks}


class WebhookNotifier:
    """POSTs `slack_body(notification)` to a Slack-compatible incoming webhook; non-2xx raises.

    `transport` replaces the network (tests pass `httpx.MockTransport`). The client is kept for
    connection reuse: use one event loop, and `aclose()` (or `async with`) when done.
    """

    def __init__(self, url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError(f"notifier url {url!r}: must be an absolute http(s) URL")
        self.url = url
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, headers={"User-Agent": "twinops-notifier/1"}
        )

    def __repr__(self) -> str:
        # Incoming-webhook URLs are bearer credentials; show the host only.
        return f"WebhookNotifier(host={httpx.URL(self.url).host!r})"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> WebhookNotifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def notify(self, notification: Notification) -> None:
        """Deliver `notification`; raise `NotifierError` unless the webhook answers 2xx."""
        host = httpx.URL(self.url).host
        try:
            response = await self._client.post(self.url, json=slack_body(notification))
        except httpx.TransportError as exc:
            raise NotifierError(f"notification {notification.kind.value}: {host} unreachable: {exc!r}") from exc
        if not response.is_success:
            status = response.status_code
            permanent = 400 <= status < 500 and status not in (408, 429)
            raise NotifierError(
                f"notification {notification.kind.value}: {host} answered {status}: {response.text[:200]}",
                permanent=permanent,
            )


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


def make_notifier(settings: Settings) -> Notifier:
    """The notifier `settings.notifier` names; a webhook notifier also logs, so the log is complete."""
    if settings.notifier == "log":
        return LogNotifier()
    if not settings.notifier_url:
        raise ConfigurationError("notifier 'webhook' needs TWINOPS_NOTIFIER_URL")
    return FanoutNotifier([LogNotifier(), WebhookNotifier(settings.notifier_url, settings.notifier_timeout_seconds)])
