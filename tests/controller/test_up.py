"""`twinops up` as a user runs it: dev server, worker and agent loop; a proposal reaches the queue."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

TWINOPS = Path(sys.executable).with_name("twinops")


def test_up_runs_the_loop_until_interrupted(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TWINOPS_HOME": str(tmp_path),
        "TWINOPS_TICK_SECONDS": "1",
        "TWINOPS_TEMPORAL_UI": "false",
        "TWINOPS_LOG_FORMAT": "json",
        "TWINOPS_API_PORT": "0",
    }
    env.pop("TWINOPS_TEMPORAL_ADDRESS", None)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([str(TWINOPS), "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        entries: list[dict[str, object]] = []
        while time.monotonic() < deadline and not entries:
            time.sleep(1)
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            if not (tmp_path / "runtime.json").exists():
                continue
            queue = subprocess.run(
                [str(TWINOPS), "queue", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert queue.returncode == 0, queue.stderr
            entries = json.loads(queue.stdout)
        assert entries, "no proposal reached the queue: " + (tmp_path / "up.log").read_text()[-3000:]
        assert entries[0]["target"] == "gateway" and entries[0]["status"] == "pending"
        # The web UI and API run beside the worker, at the address `up` prints.
        printed = (tmp_path / "up.log").read_text()
        match = re.search(r"twinops web UI:\s+(http://[0-9.:]+)/login", printed)
        assert match, printed[-3000:]
        base = match.group(1)
        assert httpx.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
        ready = httpx.get(base + "/readyz", timeout=10).json()
        assert ready["ready"] is True and set(ready["checks"]) == {"temporal", "database", "policy"}, ready
        assert httpx.get(base + "/api/v1/proposals", timeout=10).status_code == 401
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert not (tmp_path / "runtime.json").exists(), "the address file is removed on shutdown"
