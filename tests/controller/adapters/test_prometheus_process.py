"""The Prometheus and Alertmanager launchers: real servers on free loopback ports, stopped at the end."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from controller.adapters.prometheus_process import find_binary, free_port, prometheus_server
from controller.core.errors import ConfigurationError
from tests.promstack import alertmanager_server, requires_alertmanager, requires_prometheus, wait_for_query


@requires_prometheus
def test_prometheus_scrapes_its_targets_and_stops(tmp_path: Path) -> None:
    port = free_port()
    with prometheus_server(tmp_path / "prom", targets=[f"127.0.0.1:{port}"], port=port) as prom:
        # It scrapes itself: one target, up.
        wait_for_query(prom, "up", lambda r: [s["value"][1] for s in r] == ["1"])
        assert prom.targets_up() == 1
    assert prom.process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{prom.url}/-/ready", timeout=1)


@requires_alertmanager
def test_alertmanager_starts_with_a_webhook_receiver(tmp_path: Path) -> None:
    with alertmanager_server(tmp_path / "am", "http://127.0.0.1:9/api/v1/alerts", bearer_token="t") as am:
        status = httpx.get(f"{am.url}/api/v2/status", timeout=5).json()
        assert "http://127.0.0.1:9/api/v1/alerts" in status["config"]["original"]
    assert am.process.poll() is not None


def test_a_missing_binary_names_its_debian_package() -> None:
    with pytest.raises(ConfigurationError, match="apt-get install prometheus-nonesuch"):
        find_binary("prometheus-nonesuch-binary", "prometheus-nonesuch")
