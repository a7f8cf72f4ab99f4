"""A stand-in for the outside world: an estate API over HTTP, backed by the simulator.

It speaks the webhook actuator's wire protocol (signed POSTs, idempotency keys,
409 on a repeated key; `SignedActionReceiver`, the simulator exporter's receiving end)
and serves twin.v1 snapshots, so a worker in another process drives and observes it
exactly as it would a real estate. It counts how often each key's effect was applied,
which is what the crash tests assert on, and can hold an answer so a worker dies waiting.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.adapters.actuators import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from controller.adapters.live_twin import WallClockSimulatorSource
from controller.adapters.sim_exporter import SignedActionReceiver
from twin.simulator import Simulator


class EstateServer:
    """Serve `POST /actions` and `GET /snapshot` on 127.0.0.1 in a background thread."""

    def __init__(self, simulator: Simulator, secret: str, *, hold_keys: set[str] | None = None) -> None:
        self.simulator = simulator
        self.secret = secret
        self.source = WallClockSimulatorSource(simulator)
        self._lock = threading.Lock()
        self.actions = SignedActionReceiver(simulator, secret, lock=self._lock, before_apply=self.source.advance)
        self.hold_keys = hold_keys or set()
        """Requests for these keys are applied, then held (not answered) until `release` is set."""
        self.held = threading.Event()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def applied(self) -> Counter[str]:
        """How often each key's effect was applied."""
        return self.actions.applied

    @property
    def requests(self) -> Counter[str]:
        """How many requests came for each key (retries included)."""
        return self.actions.requests

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> EstateServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        estate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any] | str) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller died mid-request: exactly what the crash tests do

            def do_GET(self) -> None:
                with estate._lock:
                    estate.source.advance()
                    snap = estate.simulator.snapshot()
                self._send(200, snap.to_json())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get(IDEMPOTENCY_HEADER, "")
                status, answer = estate.actions.receive(
                    body,
                    timestamp=self.headers.get(TIMESTAMP_HEADER, ""),
                    signature=self.headers.get(SIGNATURE_HEADER, ""),
                    key=key,
                )
                if status == 200 and key in estate.hold_keys:
                    estate.held.set()
                    estate.release.wait(timeout=60)
                self._send(status, answer)

        return Handler

    def snapshot_url(self) -> str:
        """Where the twin source reads."""
        return self.url + "/snapshot"

    def now(self) -> datetime:
        """The server's clock (wall clock)."""
        return datetime.now(UTC)
