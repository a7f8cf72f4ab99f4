"""Running the API and web UI with uvicorn: on its own (`twinops serve`) or beside a worker (`twinops up`).

Uvicorn's access log is kept (method, path, status; never headers, so never a token or a
cookie); query strings carry no secrets in this API.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from controller.api.app import create_app
from controller.api.context import ApiContext, SignInLimiter
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from controller.adapters.metrics import TwinopsMetrics

__all__ = ["RunningApi", "running_api", "uvicorn_config"]


@dataclass(frozen=True)
class RunningApi:
    """Where a started API listens."""

    host: str
    port: int
    context: ApiContext

    @property
    def url(self) -> str:
        """Base URL for a browser on this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and uvicorn
    # writes head and body apart, so without it every keep-alive answer waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"TWINOPS_API_HOST/TWINOPS_API_PORT {host}:{port}: cannot listen there ({exc.strerror or exc})"
        ) from None
    return sock


def uvicorn_config(settings: Settings, app: object, *, proxy_headers: bool = False) -> uvicorn.Config:
    """The server settings both ways of running share."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_config=None,  # structlog owns logging (controller.adapters.telemetry)
        access_log=True,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="*" if proxy_headers else None,
        server_header=False,
        lifespan="on",
    )


class _QuietServer(uvicorn.Server):
    """A server that leaves SIGINT and SIGTERM to its host process (`up` stops everything in order)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings,
    client: Client,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics: TwinopsMetrics | None = None,
) -> AsyncIterator[RunningApi]:
    """Serve the API on this event loop (port 0: any free one) until the block ends."""
    host = settings.api_host if host is None else host
    port = settings.api_port if port is None else port
    sock = _bind(host, port)
    context = await ApiContext.open(settings, client=client)
    context.limiter = SignInLimiter(settings.signin_failures_allowed, settings.signin_window_seconds)
    server = _QuietServer(uvicorn_config(settings, create_app(settings, context=context, metrics=metrics)))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise ConfigurationError(f"the API server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.02)
        yield RunningApi(host, sock.getsockname()[1], context)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()
        await context.close()
