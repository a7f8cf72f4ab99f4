"""The webhook notifier: Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat, ...) and their body."""

from __future__ import annotations

from typing import Any, Final

import httpx

from controller.core.errors import ConfigurationError
from workflows.ports import Notification, NotifierError

__all__ = ["SEVERITY_EMOJI", "WebhookNotifier", "slack_body"]

SEVERITY_EMOJI: Final = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

# Slack Block Kit limits; beyond them Slack rejects the whole message with 400 invalid_blocks.
_HEADER_MAX: Final = 150
_SECTION_TEXT_MAX: Final = 3000
_FIELD_TEXT_MAX: Final = 2000
_FIELDS_PER_SECTION: Final = 10
_BLOCKS_MAX: Final = 50


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
