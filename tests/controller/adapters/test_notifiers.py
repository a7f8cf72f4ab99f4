"""Notifiers: the structured log event, the Slack-compatible body, webhook errors, fan-out."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from structlog.testing import capture_logs

from controller.adapters.notifiers import (
    FanoutNotifier,
    LogNotifier,
    WebhookNotifier,
    make_notifier,
    slack_body,
)
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from workflows.ports import Notification, NotificationKind, Notifier, NotifierError

URL = "https://hooks.example/services/T000/B000/XXXX"

ESCALATED = Notification(
    kind=NotificationKind.ESCALATED,
    remediation_id="rem-shop-checkout-1a2b",
    title="Approval overdue: scale checkout -> 8",
    text="No approver within 1 h. Plan: *scale* checkout 2 -> 8 <predicted rho 0.74>",
    severity="critical",
    fields={"target": "checkout", "risk": "medium", "approvals": "0 of 1"},
)


def test_adapters_are_notifiers() -> None:
    assert isinstance(LogNotifier(), Notifier)
    assert isinstance(WebhookNotifier(URL, timeout=1.0), Notifier)
    assert isinstance(FanoutNotifier([]), Notifier)


# ---- log -----------------------------------------------------------------------------------


async def test_log_notifier_emits_one_structured_event() -> None:
    with capture_logs() as logs:
        await LogNotifier().notify(ESCALATED)

    assert logs == [
        {
            "event": "notification",
            "log_level": "error",
            "kind": "escalated",
            "remediation_id": "rem-shop-checkout-1a2b",
            "title": ESCALATED.title,
            "text": ESCALATED.text,
            "severity": "critical",
            "fields": {"target": "checkout", "risk": "medium", "approvals": "0 of 1"},
        }
    ]


@pytest.mark.parametrize(("severity", "level"), [("info", "info"), ("warning", "warning"), ("critical", "error")])
async def test_log_level_follows_severity(severity: str, level: str) -> None:
    with capture_logs() as logs:
        await LogNotifier().notify(ESCALATED.model_copy(update={"severity": severity}))
    assert [entry["log_level"] for entry in logs] == [level]


# ---- slack body ----------------------------------------------------------------------------


def test_slack_body_shape() -> None:
    body = slack_body(ESCALATED)

    assert body["text"].startswith("[CRITICAL] Approval overdue: scale checkout -&gt; 8: ")
    header, section, fields, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":rotating_light: Approval overdue: scale checkout -> 8", "emoji": True},
    }
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    # Slack's three control characters are escaped; mrkdwn emphasis is kept.
    assert (
        section["text"]["text"] == "No approver within 1 h. Plan: *scale* checkout 2 -&gt; 8 &lt;predicted rho 0.74&gt;"
    )
    assert fields == {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*target*\ncheckout"},
            {"type": "mrkdwn", "text": "*risk*\nmedium"},
            {"type": "mrkdwn", "text": "*approvals*\n0 of 1"},
        ],
    }
    assert context["type"] == "context"
    (element,) = context["elements"]
    assert element["type"] == "mrkdwn"
    assert "*critical*" in element["text"] and "escalated" in element["text"]
    assert "rem-shop-checkout-1a2b" in element["text"]
    json.dumps(body)  # serializable as is


def test_slack_body_respects_block_kit_limits() -> None:
    noisy = ESCALATED.model_copy(
        update={
            "title": "t" * 400,
            "text": "x" * 5000,
            "fields": {f"field{i}": "v" * 3000 for i in range(23)},
            "severity": "info",
        }
    )
    blocks = slack_body(noisy)["blocks"]

    assert blocks[0]["text"]["text"].startswith(":information_source: ")
    assert len(blocks[0]["text"]["text"]) == 150
    assert len(blocks[1]["text"]["text"]) == 3000
    field_sections = [b for b in blocks if "fields" in b]
    assert [len(b["fields"]) for b in field_sections] == [10, 10, 3]
    assert all(len(f["text"]) <= 2000 for b in field_sections for f in b["fields"])


def test_slack_body_without_text_or_fields() -> None:
    bare = Notification(kind=NotificationKind.COMPLETED, remediation_id="r", title="Done", text="")
    body = slack_body(bare)
    assert body["text"] == "[INFO] Done"
    assert [b["type"] for b in body["blocks"]] == ["header", "context"]


# ---- webhook -------------------------------------------------------------------------------


def webhook(handler: Callable[[httpx.Request], httpx.Response]) -> WebhookNotifier:
    return WebhookNotifier(URL, timeout=2.0, transport=httpx.MockTransport(handler))


async def test_webhook_notifier_posts_the_slack_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    async with webhook(handler) as notifier:
        await notifier.notify(ESCALATED)

    (request,) = seen
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == slack_body(ESCALATED)


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (404, True), (400, True)])
async def test_webhook_notifier_raises_on_non_2xx(status: int, permanent: bool) -> None:
    with pytest.raises(NotifierError, match=str(status)) as caught:
        await webhook(lambda _: httpx.Response(status, text="invalid_blocks")).notify(ESCALATED)
    assert caught.value.permanent is permanent


async def test_webhook_notifier_raises_when_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(NotifierError, match="unreachable") as caught:
        await webhook(handler).notify(ESCALATED)
    assert caught.value.permanent is False


def test_webhook_notifier_hides_the_url_path() -> None:
    # The path of an incoming webhook is its credential.
    assert "XXXX" not in repr(WebhookNotifier(URL, timeout=1.0))
    with pytest.raises(ConfigurationError, match="notifier url"):
        WebhookNotifier("hooks.example/x", timeout=1.0)


# ---- fan-out and factory -------------------------------------------------------------------


class _Recording:
    def __init__(self, error: Exception | None = None) -> None:
        self.received: list[Notification] = []
        self.error = error

    async def notify(self, notification: Notification) -> None:
        self.received.append(notification)
        if self.error is not None:
            raise self.error


async def test_fanout_tells_everyone_even_when_one_fails() -> None:
    ok, broken, also_ok = _Recording(), _Recording(NotifierError("pager down")), _Recording()

    with pytest.raises(NotifierError, match=r"1 of 3 notifiers failed: .*pager down") as caught:
        await FanoutNotifier([ok, broken, also_ok]).notify(ESCALATED)

    assert ok.received == broken.received == also_ok.received == [ESCALATED]
    assert caught.value.permanent is False


async def test_fanout_all_ok() -> None:
    targets = [_Recording(), _Recording()]
    await FanoutNotifier(targets).notify(ESCALATED)
    assert all(t.received == [ESCALATED] for t in targets)


def test_make_notifier() -> None:
    assert isinstance(make_notifier(Settings()), LogNotifier)
    with pytest.raises(ConfigurationError, match="TWINOPS_NOTIFIER_URL"):
        make_notifier(Settings(notifier="webhook"))

    fanout = make_notifier(Settings(notifier="webhook", notifier_url=URL))

    assert isinstance(fanout, FanoutNotifier)
    assert [type(n) for n in fanout.notifiers] == [LogNotifier, WebhookNotifier]
