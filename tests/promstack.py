"""Real Prometheus and Alertmanager servers for tests, skipping (naming the Debian package) where absent.

    @requires_prometheus
    def test_x(tmp_path):
        with prometheus_server(tmp_path / "prom", targets=["127.0.0.1:9100"]) as prom:
            prom.query("up")

The servers themselves are `controller.adapters.prometheus_process` (the demo starts them too).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from controller.adapters.prometheus_process import (
    ALERTMANAGER_BINARY,
    ALERTMANAGER_PACKAGE,
    PROMETHEUS_BINARY,
    PROMETHEUS_PACKAGE,
    PrometheusServer,
    alertmanager_server,
    free_port,
    prometheus_server,
)

__all__ = [
    "PrometheusServer",
    "alertmanager_server",
    "free_port",
    "prometheus_server",
    "requires_alertmanager",
    "requires_prometheus",
    "requires_promtool",
    "wait_for_query",
]

requires_prometheus = pytest.mark.skipif(
    shutil.which(PROMETHEUS_BINARY) is None,
    reason=f"{PROMETHEUS_BINARY} is not installed (Debian package {PROMETHEUS_PACKAGE!r}; `make test` installs it "
    "as root)",
)
requires_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason=f"promtool is not installed (Debian package {PROMETHEUS_PACKAGE!r}; `make test` installs it as root)",
)
requires_alertmanager = pytest.mark.skipif(
    shutil.which(ALERTMANAGER_BINARY) is None,
    reason=f"{ALERTMANAGER_BINARY} is not installed (Debian package {ALERTMANAGER_PACKAGE!r}; `make test` installs "
    "it as root)",
)


def wait_for_query(
    prom: PrometheusServer,
    promql: str,
    until: Callable[[list[dict[str, Any]]], bool] = bool,
    *,
    within: float = 30.0,
) -> list[dict[str, Any]]:
    """Poll an instant query until `until(result)` holds; AssertionError with the last result after `within` s."""
    deadline = time.monotonic() + within
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = prom.query(promql)
        if until(result):
            return result
        time.sleep(0.25)
    raise AssertionError(f"{promql!r} after {within:.0f} s: {result}")
