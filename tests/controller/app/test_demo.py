"""`twinops demo` twice in a row in one home: the second run must find its proposals in the queue again.

The agent re-proposes the same plan under the same proposal (and workflow) id, so a
queue that cannot tell a new run from the closed entry of the last one loses it
(the second demo used to fail after 60 s: "no proposal for 'gateway' reached the inbox").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TWINOPS = Path(sys.executable).with_name("twinops")


def test_the_demo_runs_twice_in_one_home(tmp_path: Path) -> None:
    env = {**os.environ, "TWINOPS_HOME": str(tmp_path), "TWINOPS_TEMPORAL_UI": "false", "COLUMNS": "160"}
    env.pop("TWINOPS_TOKEN", None)
    for run in (1, 2):
        done = subprocess.run([str(TWINOPS), "demo"], env=env, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, (run, done.stdout[-3000:], done.stderr[-3000:])
        assert "demo finished as expected" in done.stdout, (run, done.stdout[-3000:])
