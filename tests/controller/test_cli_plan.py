"""`twinops plan` and `twinops detect` run the agent and print the documented JSON shapes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import twin
from controller.cli import app
from twin.history import write_history
from twin.scenario import load_scenario
from twin.simulator import Simulator

SCENARIOS = Path(twin.__file__).parent / "scenarios"
runner = CliRunner()


def _hidden(tmp_path: Path) -> Path:
    sim = Simulator(load_scenario(SCENARIOS / "hidden_downstream.yaml"), seed=2)
    sim.run(60, dt=5)
    path = tmp_path / "snap.json"
    path.write_text(sim.snapshot().to_json())
    return path


def test_plan_json_is_the_optimal_one_step_plan(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "--snapshot", str(_hidden(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["actions"] == [
        {"type": "scale", "node": "gateway", "from": 4, "to": 8},
        {"type": "scale", "node": "checkout", "from": 4, "to": 6},
    ]
    assert doc["unmet"] == []
    assert doc["predicted"]["checkout"]["utilization_after"] <= 0.8
    assert "checkout" in doc["rationale"]


def test_plan_tables_without_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "--snapshot", str(_hidden(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "alternatives" in result.stdout


def test_plan_for_the_ramp_comes_before_the_crossing(tmp_path: Path) -> None:
    sim = Simulator(load_scenario(SCENARIOS / "slow_ramp.yaml"))
    snaps = sim.run(900, dt=15, record_every=60)
    history, snap = tmp_path / "h.jsonl", tmp_path / "s.json"
    write_history(history, snaps)
    snap.write_text(snaps[-1].to_json())
    detect = runner.invoke(app, ["detect", "--snapshot", str(snap), "--history", str(history), "--json"])
    (finding,) = [f for f in json.loads(detect.stdout)["findings"] if f["kind"] == "predicted"]
    assert finding["node"] == "api" and 0 < finding["eta_seconds"] <= 900
    plan = runner.invoke(app, ["plan", "--snapshot", str(snap), "--history", str(history), "--json"])
    doc = json.loads(plan.stdout)
    assert doc["actions"] and doc["actions"][0]["node"] == "api" and doc["actions"][0]["to"] > 5


def test_detect_json_shape_and_target_override(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["detect", "--snapshot", str(_hidden(tmp_path)), "--target-utilization", "0.6", "--json"]
    )
    doc = json.loads(result.stdout)
    assert doc["constraint"] == "gateway"
    kinds = {(f["node"], f["kind"]) for f in doc["findings"]}
    assert {("gateway", "saturated"), ("checkout", "saturated"), ("catalog", "at_risk")} <= kinds
    assert all({"node", "kind", "demand_utilization", "eta_seconds"} <= set(f) for f in doc["findings"])


def test_bad_desires_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("target_utilization: 3\n")
    result = runner.invoke(app, ["plan", "--snapshot", str(_hidden(tmp_path)), "--desires", str(bad), "--json"])
    assert result.exit_code == 2
    assert "target_utilization" in result.output
