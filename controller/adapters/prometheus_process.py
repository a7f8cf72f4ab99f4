"""Run a real Prometheus or Alertmanager as a child process: tests, the demo and benchmarks.

Each server gets a temporary config and data directory and free loopback ports, and is
stopped (SIGTERM, then SIGKILL) when its context ends. Debian packages them as
`prometheus` (with `promtool`) and `prometheus-alertmanager`.

    with prometheus_server(tmp, targets=["127.0.0.1:9100"], scrape_interval="1s") as prom:
        prom.query('up')                                    # the instant query's result list
    with alertmanager_server(tmp, webhook_url="http://127.0.0.1:8321/api/v1/alerts") as am:
        am.url
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from controller.core.errors import ConfigurationError

PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"
PROMETHEUS_PACKAGE = "prometheus"
ALERTMANAGER_PACKAGE = "prometheus-alertmanager"
READY_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str, package: str) -> str:
    """The path of `name`, or ConfigurationError naming the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise ConfigurationError(f"{name} is not installed (Debian package {package!r}: apt-get install {package})")
    return path


@dataclass
class RunningServer:
    """A started server: its base URL, the process and where its log goes."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class PrometheusServer(RunningServer):
    """A running Prometheus with a query helper."""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (raises on an error answer)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r}: {body}")
        return list(body["data"]["result"])

    def targets_up(self) -> int:
        """How many scrape targets answered their last scrape."""
        return sum(1 for s in self.query("up") if s["value"][1] == "1")


def _wait_ready(server: RunningServer, what: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s:\n{server.log_tail()}")


def _spawn(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `command` with its output going to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT)


_S = TypeVar("_S", bound=RunningServer)


@contextlib.contextmanager
def _serving(server: _S, what: str) -> Iterator[_S]:
    """`server` once it answers ready; stopped when the block ends (or when it never got ready)."""
    try:
        _wait_ready(server, what)
        yield server
    finally:
        server.stop()


def prometheus_config(
    targets: Sequence[str],
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
    evaluation_interval: str | None = None,
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """prometheus.yml as a dict: one job scraping `targets` (host:port), rules, an Alertmanager."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval or scrape_interval,
        },
        "scrape_configs": [
            {"job_name": "twinops", "metrics_path": metrics_path, "static_configs": [{"targets": list(targets)}]}
        ],
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


@contextlib.contextmanager
def prometheus_server(
    workdir: Path,
    targets: Sequence[str] = (),
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
    config: dict[str, Any] | None = None,
    port: int | None = None,
) -> Iterator[PrometheusServer]:
    """A Prometheus on 127.0.0.1 scraping `targets` (or running `config`), stopped at the end."""
    binary = find_binary(PROMETHEUS_BINARY, PROMETHEUS_PACKAGE)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config_file = workdir / "prometheus.yml"
    body = config or prometheus_config(
        targets, scrape_interval=scrape_interval, rule_files=rule_files, alertmanager=alertmanager
    )
    config_file.write_text(yaml.safe_dump(body, sort_keys=False))
    port = port or free_port()
    log = workdir / "prometheus.log"
    process = _spawn(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
        ],
        log,
    )
    with _serving(PrometheusServer(url=f"http://127.0.0.1:{port}", process=process, log=log), "prometheus") as server:
        yield server


def alertmanager_config(webhook_url: str, *, username: str | None = None, password: str | None = None,
                        bearer_token: str | None = None) -> dict[str, Any]:  # fmt: skip
    """alertmanager.yml as a dict: every alert to one webhook at once (no group wait), resolved ones too."""
    http_config: dict[str, Any] = {}
    if bearer_token is not None:
        http_config["authorization"] = {"type": "Bearer", "credentials": bearer_token}
    elif username is not None:
        http_config["basic_auth"] = {"username": username, "password": password or ""}
    receiver: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if http_config:
        receiver["http_config"] = http_config
    return {
        "route": {
            "receiver": "twinops",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "twinops", "webhook_configs": [receiver]}],
    }


@contextlib.contextmanager
def alertmanager_server(
    workdir: Path, webhook_url: str | None = None, *, config: dict[str, Any] | None = None, **auth: str
) -> Iterator[RunningServer]:
    """An Alertmanager on 127.0.0.1 sending every alert to `webhook_url` (or running `config`)."""
    binary = find_binary(ALERTMANAGER_BINARY, ALERTMANAGER_PACKAGE)
    if config is None and webhook_url is None:
        raise ValueError("alertmanager_server needs webhook_url or config")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config or alertmanager_config(str(webhook_url), **auth), sort_keys=False))
    port, cluster = free_port(), free_port()
    log = workdir / "alertmanager.log"
    process = _spawn(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--cluster.listen-address=127.0.0.1:{cluster}",
            f"--cluster.advertise-address=127.0.0.1:{cluster}",
        ],
        log,
    )
    with _serving(RunningServer(url=f"http://127.0.0.1:{port}", process=process, log=log), "alertmanager") as server:
        yield server
