"""Human output for humans, logs to the log: stderr shows warnings and up unless --verbose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from controller.adapters.telemetry import configure_logging
from controller.core.settings import Settings


class Stderr:
    """What the test wrote to stderr (configure logging inside the test: pytest swaps sys.stderr per phase)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    yield Stderr(capsys)
    structlog.reset_defaults()


def emit() -> None:
    log = structlog.get_logger("test")
    log.info("approval.sent", proposal_id="p-1")
    log.warning("policy.fail_closed", code="policy_timeout")
    log.info("notification", title="escalated")


def events(text: str) -> list[str]:
    return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]


def test_stderr_shows_warnings_only_by_default(tmp_path: Path, stderr: Stderr) -> None:
    configure_logging(Settings(home=tmp_path, log_format="json"))
    emit()
    assert events(stderr.getvalue()) == ["policy.fail_closed"]


def test_verbose_shows_info_on_stderr(tmp_path: Path, stderr: Stderr) -> None:
    configure_logging(Settings(home=tmp_path, log_format="json"), verbose=True)
    emit()
    assert events(stderr.getvalue()) == ["approval.sent", "policy.fail_closed", "notification"]


def test_an_explicit_log_level_is_obeyed(tmp_path: Path, stderr: Stderr) -> None:
    configure_logging(Settings(home=tmp_path, log_format="json", log_level="ERROR"))
    emit()
    assert events(stderr.getvalue()) == []


def test_the_log_file_gets_every_event_and_file_only_events_stay_off_stderr(tmp_path: Path, stderr: Stderr) -> None:
    log_file = tmp_path / "twinops.log"
    configure_logging(
        Settings(home=tmp_path, log_format="json"), verbose=True, log_file=log_file, file_only={"notification"}
    )
    emit()
    assert events(log_file.read_text()) == ["approval.sent", "policy.fail_closed", "notification"]
    assert events(stderr.getvalue()) == ["approval.sent", "policy.fail_closed"]


@pytest.mark.parametrize(("argv", "level"), [(["--verbose", "--help"], "Info"), (["--help"], "Warning")])
def test_the_global_verbose_option_sets_what_stderr_shows(
    argv: list[str], level: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: Stderr
) -> None:
    import controller.cli

    monkeypatch.setattr("sys.argv", ["twinops", *argv])
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    monkeypatch.delenv("TWINOPS_LOG_LEVEL", raising=False)
    assert controller.cli._run() == 0
    assert structlog.get_config()["wrapper_class"].__name__ == f"BoundLoggerFilteringAt{level}"
