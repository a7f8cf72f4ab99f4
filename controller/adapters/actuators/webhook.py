"""The webhook actuator: an HTTP endpoint that applies actions to a real estate, and its wire protocol.

Webhook wire protocol, v1
-------------------------
One request per step::

    POST {actuator_url}
    Content-Type: application/json
    Idempotency-Key: <key>
    X-Twinops-Timestamp: <unix seconds, integer>
    X-Twinops-Signature: sha256=<hex HMAC-SHA256(secret, b"v1:" + timestamp + b":" + body)>

    {"action": {"type": "scale", "node": "checkout", "replicas": 8}, "idempotency_key": "<key>"}

`body` is the exact request bytes. The timestamp is signed with the body so a captured request
cannot be replayed later with a fresh timestamp; receivers check both with `verify_signature`.

The receiver answers with `{"applied": bool, "undo": action | null, "detail": str}`:

- 2xx: done (or not, as `applied` says); `undo` reverts it, null when it cannot be reverted.
- 409: this key was applied before; the body carries the original `undo`. Nothing is redone.
- 408, 429, 5xx, network errors, unreadable bodies: transient; the activity retries, same key.
- any other status (3xx, 4xx): permanent; the estate refused the action.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Final

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from controller.core.errors import ConfigurationError
from twin.actions import Action, describe
from workflows.ports import ActuatorError, StepOutcome

__all__ = [
    "DEFAULT_SIGNATURE_MAX_AGE_SECONDS",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "WebhookActuator",
    "sign_request",
    "verify_signature",
]

SIGNATURE_VERSION: Final = "v1"
"""Prefix of the signed material; bump it if the material ever changes."""
SIGNATURE_HEADER: Final = "X-Twinops-Signature"
TIMESTAMP_HEADER: Final = "X-Twinops-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
DEFAULT_SIGNATURE_MAX_AGE_SECONDS: Final = 300.0
"""How old a signed request `verify_signature` accepts by default (replay window)."""

_TRANSIENT_STATUSES: Final = frozenset({408, 429})
_ALREADY_APPLIED: Final = 409

_log = structlog.get_logger(__name__)


def _secret_bytes(secret: SecretStr | str | bytes) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def sign_request(secret: SecretStr | str | bytes, timestamp: str, body: bytes) -> str:
    """The `X-Twinops-Signature` value for `body` sent at `timestamp`: `sha256=<hex>`."""
    material = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return "sha256=" + hmac.new(_secret_bytes(secret), material, hashlib.sha256).hexdigest()


def verify_signature(
    secret: SecretStr | str | bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    max_age_seconds: float | None = DEFAULT_SIGNATURE_MAX_AGE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `header` is a valid signature of `body` at `timestamp` (for webhook receivers).

    `body` must be the raw request bytes, not re-serialized JSON. With `max_age_seconds` set,
    a timestamp further than that from `now` (default: the current time) is refused, so a
    captured request cannot be replayed; pass None to check the signature only.
    """
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if max_age_seconds is not None:
        current = time.time() if now is None else now
        if abs(current - sent_at) > max_age_seconds:
            return False
    expected = sign_request(secret, timestamp, body)
    # Constant time, so the signature cannot be guessed byte by byte from response timings.
    return hmac.compare_digest(expected.encode(), header.encode())


class _WebhookResult(BaseModel):
    """The receiver's answer; unknown fields are ignored so receivers may add their own."""

    model_config = ConfigDict(extra="ignore")

    applied: bool
    undo: Action | None = None
    detail: str = ""


class WebhookActuator:
    """`Actuator` that POSTs each action, signed, to an HTTP endpoint (protocol in the module docstring).

    The receiver must treat a repeated `Idempotency-Key` as done and answer 409 with the original
    undo. `transport` replaces the network (tests pass `httpx.MockTransport`). The client is
    kept for connection reuse: use one event loop, and `aclose()` (or `async with`) when done.
    """

    def __init__(
        self,
        url: str,
        secret: SecretStr | str | bytes,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError(f"actuator url {url!r}: must be an absolute http(s) URL")
        if not _secret_bytes(secret):
            raise ConfigurationError("actuator secret: must not be empty")
        self.url = url
        self._secret = _secret_bytes(secret)
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, headers={"User-Agent": "twinops-actuator/1"}
        )

    def __repr__(self) -> str:
        # Never the secret.
        return f"WebhookActuator(url={self.url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> WebhookActuator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def apply(self, idempotency_key: str, action: Action) -> StepOutcome:
        """POST `action` under `idempotency_key`; map the answer to a `StepOutcome` or `ActuatorError`."""
        what = describe(action)
        body = json.dumps(
            {"action": action.model_dump(mode="json"), "idempotency_key": idempotency_key},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        # Signed per attempt: a retry carries a fresh timestamp and still passes the replay window.
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_request(self._secret, timestamp, body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            _log.warning("actuator_unreachable", url=self.url, action=what, key=idempotency_key, error=str(exc))
            raise ActuatorError(f"'{what}': {self.url} unreachable: {exc!r}", permanent=False) from exc

        status = response.status_code
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise ActuatorError(f"'{what}': {self.url} answered {status}: {_excerpt(response)}", permanent=False)
        if not (response.is_success or status == _ALREADY_APPLIED):
            raise ActuatorError(f"'{what}' refused by {self.url}: {status} {_excerpt(response)}", permanent=True)
        try:
            result = _WebhookResult.model_validate_json(response.content)
        except ValidationError as exc:
            # Transient on purpose: the action may well have been applied, and only a retry under
            # the same key (answered 409 with the undo) can recover the compensation.
            raise ActuatorError(
                f"'{what}': {self.url} answered {status} with an unreadable body: {_excerpt(response)}",
                permanent=False,
            ) from exc
        return StepOutcome(
            idempotency_key=idempotency_key,
            applied=result.applied and status != _ALREADY_APPLIED,
            undo=result.undo,
            detail=result.detail or (f"already applied: {what}" if status == _ALREADY_APPLIED else what),
        )


def _excerpt(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip()
    return text if len(text) <= limit else text[:limit] + "..."
