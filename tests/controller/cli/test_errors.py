"""A user's configuration mistake is one line on stderr naming the setting, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.controller.cli.conftest import twinops


def assert_one_line(result: subprocess.CompletedProcess[str], setting: str) -> str:
    code, stderr = result.returncode, result.stderr
    assert code == 2, (code, stderr)
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and setting in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "postgresql+psycopg://twinops:s3cret@127.0.0.1:1/twinops",  # nothing listens on port 1
        "oracle://twinops:s3cret@db/twinops",
        "mysql://twinops:s3cret@db/twinops",
    ],
)
def test_a_bad_database_url_is_one_line_naming_the_setting(tmp_path: Path, url: str) -> None:
    line = assert_one_line(twinops(tmp_path, "queue", TWINOPS_DATABASE_URL=url), "TWINOPS_DATABASE_URL")
    assert "s3cret" not in line


def test_an_invalid_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    line = assert_one_line(twinops(tmp_path, "up", TWINOPS_TICK_SECONDS="-1"), "TWINOPS_TICK_SECONDS")
    assert "greater than 0" in line


def test_up_with_a_configuration_error_is_one_line(tmp_path: Path) -> None:
    assert_one_line(twinops(tmp_path, "up", TWINOPS_NOTIFIER="webhook"), "TWINOPS_NOTIFIER_URL")


def test_up_against_no_temporal_is_one_line_every_time(tmp_path: Path) -> None:
    # The Rust runtime used to abort the interpreter at exit now and then (PyGILState_Release, exit 134).
    for _ in range(4):
        line = assert_one_line(
            twinops(tmp_path, "up", TWINOPS_TEMPORAL_ADDRESS="127.0.0.1:1"), "TWINOPS_TEMPORAL_ADDRESS"
        )
        assert "cannot reach Temporal at 127.0.0.1:1" in line and "tonic" not in line


@pytest.mark.parametrize("command", [["show", "p-1"], ["approve", "p-1"], ["worker"]])
def test_other_commands_against_no_temporal_are_one_line(tmp_path: Path, command: list[str]) -> None:
    # show/approve resolve the id first: give them one to find.
    from controller.adapters.inbox import SqlApprovalInbox
    from controller.core.db import create_engine, migrate
    from tests.controller.cli.test_queue import entry

    engine = create_engine(f"sqlite:///{tmp_path / 'twinops.db'}")
    migrate(engine)
    SqlApprovalInbox(engine).upsert_sync(entry("p-1"))
    engine.dispose()
    result = twinops(tmp_path, *command, TWINOPS_TEMPORAL_ADDRESS="127.0.0.1:1", TWINOPS_TOKEN="t")
    assert_one_line(result, "TWINOPS_TEMPORAL_ADDRESS")


def test_a_url_as_temporal_address_is_one_line(tmp_path: Path) -> None:
    result = twinops(tmp_path, "up", TWINOPS_TEMPORAL_ADDRESS="http://localhost:7233")
    assert "expected host:port" in assert_one_line(result, "TWINOPS_TEMPORAL_ADDRESS")
