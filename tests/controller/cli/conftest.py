"""Helpers for CLI tests: run `twinops` as a user does, in a subprocess, with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from controller.adapters.telemetry import configure_logging
from controller.core.settings import Settings

# The live-stack fixtures of the workflow tests (a worker on a fresh task queue over fresh stores).
from tests.workflows.conftest import scenario, stack  # noqa: F401 - fixtures for test_decisions

TWINOPS = Path(sys.executable).with_name("twinops")


def cli_env(home: Path, **variables: str) -> dict[str, str]:
    """The environment minus every TWINOPS_* variable, plus `variables`, with state under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINOPS_")}
    env.update({"TWINOPS_HOME": str(home), "COLUMNS": "80", **variables})
    return env


def twinops(home: Path, *args: str, timeout: float = 60, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run `twinops ARGS` with `variables` set; capture both streams."""
    return subprocess.run(
        [str(TWINOPS), *args], env=cli_env(home, **variables), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(autouse=True)
def _logs_on_stderr(tmp_path: Path) -> Iterator[None]:
    """Logging as `main` configures it (stderr, warnings and up), so in-process commands keep stdout clean."""
    configure_logging(Settings(home=tmp_path, log_format="json"))
    yield
    structlog.reset_defaults()
