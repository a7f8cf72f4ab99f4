"""`twinops worker` starts, says where it works, and stops on SIGINT: exit 0, nothing on stderr."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from controller.adapters.temporal_server import TemporalRuntime
from tests.controller.cli.conftest import TWINOPS, cli_env

pytestmark = pytest.mark.integration


def test_worker_stops_cleanly_on_sigint(tmp_path: Path, temporal: TemporalRuntime) -> None:
    assert temporal.info is not None
    queue = f"test-{uuid.uuid4()}"
    env = cli_env(tmp_path, TWINOPS_TEMPORAL_ADDRESS=temporal.info.address, TWINOPS_LOG_FORMAT="json")
    out, err = (tmp_path / "out").open("w"), (tmp_path / "err").open("w")
    worker = subprocess.Popen([str(TWINOPS), "worker", "--task-queue", queue], env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "worker on task queue" not in (tmp_path / "out").read_text():
            assert worker.poll() is None, (tmp_path / "err").read_text()[-2000:]
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        code = worker.wait(60)
        out.close()
        err.close()
    time.sleep(1)  # a policy engine process left behind would complain after its parent is gone
    assert code == 0
    assert (tmp_path / "err").read_text() == ""
    assert f"worker on task queue {queue}" in (tmp_path / "out").read_text()
