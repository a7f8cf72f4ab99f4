"""`twinops plan` forecasts demand from a history that spans a day, or from the database's stored one, and shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import twin
from agents import revise
from controller.adapters.demand_history import SqlDemandHistory
from controller.cli import app
from controller.core.db import create_engine, migrate
from controller.core.settings import Settings
from twin.contract import Snapshot
from twin.history import write_history
from twin.scenario import load_scenario
from twin.simulator import Simulator

SCENARIOS = Path(twin.__file__).parent / "scenarios"
runner = CliRunner()


@dataclass
class Day:
    """A day and ten hours of the diurnal shop, every 5 minutes, as files: the last snapshot and the rest."""

    snapshots: list[Snapshot]
    snapshot: Path
    history: Path
    short: Path
    """The last hour of the history only: too little to forecast from."""


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    # 10:00 on the second day: search and checkout (faults of the first day) over target as the morning rises.
    sim = Simulator(load_scenario(SCENARIOS / "diurnal_day.yaml"))
    snaps = sim.run(86400 + 10 * 3600, dt=60, record_every=300)
    folder = tmp_path_factory.mktemp("day")
    snapshot, history, short = folder / "s.json", folder / "h.jsonl", folder / "short.jsonl"
    snapshot.write_text(snaps[-1].to_json())
    write_history(history, snaps[:-1])
    write_history(short, snaps[-13:-1])
    return Day(snaps, snapshot, history, short)


def plan(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    result = runner.invoke(app, ["plan", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def test_a_history_spanning_a_day_puts_the_forecast_in_the_plan(day: Day) -> None:
    doc = json.loads(plan("--snapshot", str(day.snapshot), "--history", str(day.history), "--json")[0])
    fixes = {p["target"]: p for p in doc["proposals"]}
    assert {"search", "checkout"} <= set(fixes)
    forecast = fixes["checkout"]["forecast"]
    assert forecast is not None and forecast["method"] == "seasonal_daily"
    assert forecast["days_of_history"] >= 1  # the history file spans a day and some hours
    assert forecast["days_of_history"] < 2
    assert forecast["band"] > 0
    assert forecast["band"] < 0.2
    assert forecast["planning_rps"] >= forecast["peak_rps"] > 0
    assert forecast["peak_upper_rps"] == pytest.approx(forecast["planning_rps"])
    observed = day.snapshots[-1].observed_at
    window = timedelta(seconds=forecast["window_seconds"])
    assert observed <= datetime.fromisoformat(forecast["peak_at"]) <= observed + window
    assert forecast["crossing_at"] is not None  # over target already: the upper band crosses it now
    assert forecast["sentence"] in fixes["checkout"]["rationale"]
    # Scale-down proposals carry theirs too (or null).
    assert all("forecast" in p for p in doc["scale_down"])

    text = plan("--snapshot", str(day.snapshot), "--history", str(day.history))[0]
    line = next(x for x in text.splitlines() if x.startswith("forecast checkout: "))
    assert forecast["sentence"] in line
    assert f"sized for {forecast['planning_rps']:,.0f} rps over the next 7 min (readiness + cool-down)" in line
    assert "the upper band crosses the target at 10:00" in line
    assert any(x.startswith("forecast search: peak of ") for x in text.splitlines())


def test_without_a_forecast_the_output_is_what_it_was(day: Day) -> None:
    short = ("--snapshot", str(day.snapshot), "--history", str(day.short))
    off = ("--snapshot", str(day.snapshot), "--history", str(day.history), "--no-forecast")
    # A history of an hour forecasts nothing; --no-forecast ignores a day of it: the same plan, no forecast anywhere.
    for args in (short, off):
        doc = json.loads(plan(*args, "--json")[0])
        assert doc["proposals"] and all(p["forecast"] is None for p in doc["proposals"] + doc["scale_down"])
        assert "Forecast:" not in doc["rationale"]
        assert "forecast" not in plan(*args)[0]


def _store_a_day(home: Path, day: Day) -> None:
    engine = create_engine(Settings(home=home).resolved_database_url)
    try:
        migrate(engine)
        store = SqlDemandHistory(engine)
        for s in day.snapshots[:-1]:
            beliefs = revise(None, s)
            store.record_sync(s.twin_id, s.observed_at, {n: b.demand for n, b in beliefs.nodes.items() if b.trusted})
    finally:
        engine.dispose()


def test_the_stored_demand_history_feeds_the_forecast(day: Day, tmp_path: Path) -> None:
    _store_a_day(tmp_path, day)
    from_file = json.loads(plan("--snapshot", str(day.snapshot), "--history", str(day.history), "--json")[0])
    stored, note = plan(
        "--snapshot", str(day.snapshot), "--history", str(day.short), "--json", env={"TWINOPS_HOME": str(tmp_path)}
    )
    doc = json.loads(stored)
    assert note == ""
    got = {p["target"]: p["forecast"] for p in doc["proposals"]}
    want = {p["target"]: p["forecast"] for p in from_file["proposals"]}
    assert got.keys() == want.keys() and all(f is not None for f in got.values())
    # The store keeps the same buckets the CLI builds from the file: the same forecast.
    assert got["checkout"]["sentence"] == want["checkout"]["sentence"]
    assert got["checkout"]["planning_rps"] == pytest.approx(want["checkout"]["planning_rps"], rel=1e-6)
    # Another twin's plan finds nothing of this one's.
    other = day.snapshots[-1].model_copy(update={"twin_id": "elsewhere"})
    other_path = tmp_path / "other.json"
    other_path.write_text(other.to_json())
    elsewhere = json.loads(plan("--snapshot", str(other_path), "--json", env={"TWINOPS_HOME": str(tmp_path)})[0])
    assert all(p["forecast"] is None for p in elsewhere["proposals"])


def test_a_store_that_cannot_be_read_is_a_note_and_the_plan_goes_on(day: Day, tmp_path: Path) -> None:
    empty = tmp_path / "not-migrated.db"
    empty.write_bytes(b"")
    env = {"TWINOPS_DATABASE_URL": f"sqlite:///{empty}"}
    out, err = plan("--snapshot", str(day.snapshot), "--history", str(day.short), "--json", env=env)
    assert json.loads(out)["proposals"]
    assert err.startswith("note: forecasting without the stored demand history: ") and "demand_history" in err
    assert len(err.strip().splitlines()) == 1
    # Invalid settings are a note too, never an error: a plan needs no database.
    out, err = plan("--snapshot", str(day.snapshot), "--json", env={"TWINOPS_DEMAND_BUCKET_SECONDS": "7"})
    assert json.loads(out)["proposals"] and err.startswith("note: forecasting without the stored demand history")
    # No database configured and none under home: nothing is read, nothing said, nothing created.
    out, err = plan("--snapshot", str(day.snapshot), "--json", env={"TWINOPS_HOME": str(tmp_path / "home")})
    assert err == "" and not (tmp_path / "home").exists()
