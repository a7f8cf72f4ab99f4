"""`twinops twin simulate|whatif|snapshot` by scenario name, and `twin snapshot` from the configured source."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from twin.contract import parse_snapshot
from twin.history import read_history
from twin.scenario import load_scenario
from twin.simulator import Simulator

runner = CliRunner()
SCENARIOS = Path(__file__).resolve().parents[2] / "twin" / "scenarios"


def test_simulate_finds_a_scenario_by_name(tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    result = runner.invoke(app, ["twin", "simulate", "hidden_downstream", "--seconds", "60", "--out", str(out)])
    assert result.exit_code == 0, result.output
    history = read_history(out)
    assert history and history[0].twin_id == "shop"


def test_an_unknown_scenario_is_one_line_listing_the_names() -> None:
    result = runner.invoke(app, ["twin", "snapshot", "no_such_scenario"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no_such_scenario" in lines[0] and "hidden_downstream" in lines[0]


@pytest.mark.parametrize("name", ["hidden_downstream", "bad_release.yaml"])
def test_snapshot_of_a_scenario_at_a_time(name: str) -> None:
    result = runner.invoke(app, ["twin", "snapshot", name, "--at", "30", "--json"])
    assert result.exit_code == 0, result.output
    snap = parse_snapshot(json.loads(result.output))
    scenario = load_scenario(SCENARIOS / (name if name.endswith(".yaml") else f"{name}.yaml"))
    assert snap.observed_at == scenario.start + timedelta(seconds=30)
    expected = Simulator(scenario)
    expected.run(30)
    assert {n.id: n.replicas for n in snap.nodes} == {n.id: n.replicas for n in expected.snapshot().nodes}


def test_snapshot_without_a_scenario_reads_the_configured_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Simulator(load_scenario(SCENARIOS / "single_saturated.yaml")).snapshot()
    file = tmp_path / "twin.json"
    file.write_text(source.model_dump_json())
    monkeypatch.setenv("TWINOPS_TWIN_SOURCE", "file")
    monkeypatch.setenv("TWINOPS_TWIN_FILE", str(file))
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["twin", "snapshot", "--json"])
    assert result.exit_code == 0, result.output
    assert parse_snapshot(json.loads(result.output)) == source
    table = runner.invoke(app, ["twin", "snapshot"])
    assert table.exit_code == 0 and "file twin source" in table.output
