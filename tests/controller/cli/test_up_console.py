"""`twinops up` talks to a person: status lines and notifications as sentences; the JSON goes to the log file."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.controller.cli.conftest import TWINOPS, cli_env

pytestmark = pytest.mark.integration


def test_up_console_has_sentences_and_the_log_file_has_the_events(tmp_path: Path) -> None:
    env = cli_env(tmp_path, TWINOPS_LOG_FORMAT="json")
    out, err = (tmp_path / "out").open("w"), (tmp_path / "err").open("w")
    up = subprocess.Popen([str(TWINOPS), "up", "--tick", "1", "--no-ui"], env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "Approval requested" not in (tmp_path / "out").read_text():
            assert up.poll() is None, (tmp_path / "err").read_text()[-2000:]
            time.sleep(1)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
        out.close()
        err.close()
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert code == 0, stderr
    assert stderr == ""
    assert "[warning] Approval requested" in stdout
    assert not [line for line in stdout.splitlines() if line.startswith("{")], "no JSON on the console"
    assert "Temporal Server:" not in stdout, "the dev server's banner goes to its own log"
    events = [json.loads(line)["event"] for line in (tmp_path / "twinops.log").read_text().splitlines()]
    assert "notification" in events and "temporal.started" in events
