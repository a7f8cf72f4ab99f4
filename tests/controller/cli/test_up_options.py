"""`twinops up` takes its settings as options too, and the Temporal UI keeps its port across starts."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from controller.cli import app
from controller.core.errors import RuntimeUnavailableError
from controller.core.settings import Settings


def test_every_up_option_names_its_variable() -> None:
    import typer

    up = typer.main.get_command(app).commands["up"]  # type: ignore[attr-defined]
    helps = {opt: param.help or "" for param in up.params for opt in [*param.opts, *param.secondary_opts]}
    for option, variable in [
        ("--scenario", "TWINOPS_TWIN_SCENARIO"),
        ("--twin-id", "TWINOPS_TWIN_ID"),
        ("--tick", "TWINOPS_TICK_SECONDS"),
        ("--temporal-port", "TWINOPS_TEMPORAL_PORT"),
        ("--ui-port", "TWINOPS_TEMPORAL_UI_PORT"),
        ("--no-ui", "TWINOPS_TEMPORAL_UI"),
        ("--log-file", "TWINOPS_LOG_FILE"),
    ]:
        assert variable in helps[option], option


def test_up_options_override_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.cli.stack import up_settings

    monkeypatch.setenv("TWINOPS_TICK_SECONDS", "15")
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    scenario = tmp_path / "s.yaml"
    settings = up_settings(tick=2.5, ui_port=18233, ui=False, scenario=scenario, temporal_port=None)
    assert settings.tick_seconds == 2.5 and settings.temporal_ui_port == 18233 and settings.temporal_ui is False
    assert settings.twin_scenario == scenario
    assert up_settings().tick_seconds == 15


def busy_port() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_the_ui_port_is_the_one_used_last_time_when_free(tmp_path: Path) -> None:
    from controller.adapters.temporal_server import DEFAULT_UI_PORT, choose_ui_port, free_port

    settings = Settings(home=tmp_path)
    remembered = free_port()
    (tmp_path / "ports.json").write_text(json.dumps({"ui": remembered}))
    assert choose_ui_port(settings) == remembered
    with busy_port() as taken:
        (tmp_path / "ports.json").write_text(json.dumps({"ui": taken.getsockname()[1]}))
        assert choose_ui_port(settings) in (DEFAULT_UI_PORT, *range(1024, 65536))
        assert choose_ui_port(settings) != taken.getsockname()[1]


def test_a_configured_ui_port_that_is_taken_is_a_clear_error(tmp_path: Path) -> None:
    from controller.adapters.temporal_server import choose_ui_port

    with busy_port() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeUnavailableError, match=f"TWINOPS_TEMPORAL_UI_PORT {port}"):
            choose_ui_port(Settings(home=tmp_path, temporal_ui_port=port))


@pytest.mark.integration
async def test_the_ui_keeps_its_port_across_restarts(tmp_path: Path) -> None:
    from controller.adapters.temporal_server import TemporalRuntime

    settings = Settings(home=tmp_path, temporal_ui=True)
    async with TemporalRuntime(settings) as rt:
        assert rt.info is not None and rt.info.ui_url
        first = rt.info.ui_url
    async with TemporalRuntime(settings) as rt:
        assert rt.info is not None and rt.info.ui_url == first


async def test_up_prints_notifications_as_sentences() -> None:
    from controller.adapters.notifiers import ConsoleNotifier
    from tests.controller.adapters.test_notifiers import ESCALATED

    lines: list[str] = []
    await ConsoleNotifier(lines.append).notify(ESCALATED)
    assert lines == [f"[critical] {ESCALATED.title}: {' '.join(ESCALATED.text.split())} ({ESCALATED.remediation_id})"]
