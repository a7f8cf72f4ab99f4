"""The API process on its own: it starts while Temporal is down, says so in /readyz, and answers 503, not 500."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest_asyncio

from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.core.settings import Settings
from workflows.ports import InboxEntry, InboxStatus


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def api_without_temporal(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ApiContext]]:
    settings = Settings(home=tmp_path, temporal_address=f"127.0.0.1:{_closed_port()}")
    context = await ApiContext.open(settings)
    app = create_app(settings, context=context)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http, context
    await context.close()


async def test_readyz_names_the_unreachable_dependency(
    api_without_temporal: tuple[httpx.AsyncClient, ApiContext],
) -> None:
    http, _ = api_without_temporal
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == {"ok": True} and checks["policy"] == {"ok": True}, checks
    assert checks["temporal"]["ok"] is False and checks["temporal"]["error"], checks


async def test_a_decision_while_temporal_is_down_is_503_naming_it(
    api_without_temporal: tuple[httpx.AsyncClient, ApiContext],
) -> None:
    http, context = api_without_temporal
    token = context.identities.add_user("ana", "approver", "edge", groups=["sre"])
    context.inbox.upsert_sync(
        InboxEntry(
            proposal_id="p-down",
            workflow_id="remediation-p-down",
            twin_id="shop",
            status=InboxStatus.PENDING,
            risk="medium",
            target="gateway",
            summary="scale gateway",
            created_at=datetime.now(UTC),
        )
    )
    answer = await http.post(
        "/api/v1/proposals/p-down/approve", json={"comment": ""}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "Temporal" in answer.json()["detail"]


async def test_the_listening_socket_gives_connections_tcp_nodelay() -> None:
    """uvicorn writes an answer's head and body apart; without TCP_NODELAY a keep-alive answer waits ~40 ms
    for the client's delayed ACK (measured by the API benchmark). asyncio sets it only on TCP-protocol sockets."""
    import asyncio
    import socket as socketlib

    from controller.api.server import _bind

    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socketlib.IPPROTO_TCP, socketlib.TCP_NODELAY))
            transport.close()

    listening = _bind("127.0.0.1", 0)
    server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", listening.getsockname()[1])
        assert await asyncio.wait_for(accepted, 5) == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
