"""A playbook dry run: one snapshot of a simulator twin, the stored demand history, the real policy; no change."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import twin
from agents import revise
from controller.adapters.demand_history import SqlDemandHistory
from controller.adapters.inbox import approval_inbox
from controller.adapters.live_twin import WallClockSimulatorSource
from controller.app.playbooks import dry_run
from controller.core.db import create_engine, migrate
from controller.core.settings import REPO_ROOT, Settings
from twin.scenario import load_scenario
from twin.simulator import Simulator

SCENARIO = Path(twin.__file__).parent / "scenarios" / "diurnal_day.yaml"


@dataclass
class Night:
    settings: Settings
    simulator: Simulator
    at: datetime


@pytest.fixture
def night(tmp_path: Path) -> Night:
    """The diurnal shop at 02:30 on its second day, its demand stored every 5 minutes since the first midnight.

    catalog and search (tier standard) are sized for the peak with room to spare; the policy's copy
    never auto-approves catalog, so its step waits for approvers while search's runs at once.
    """
    scenario = load_scenario(SCENARIO)
    sized = {"catalog": {"replicas": 20}, "search": {"replicas": 12}}
    nodes = [n.model_copy(update=sized.get(n.id, {})) for n in scenario.nodes]
    sim = Simulator(scenario.model_copy(update={"nodes": nodes, "faults": [], "duration": 2 * 86400}))
    snaps = sim.run(86400 + 2.5 * 3600, dt=60, record_every=300)
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    data = json.loads((policies / "data.json").read_text())
    data["twinops"]["config"]["safety"]["never_auto_approve"]["nodes"] = ["catalog"]
    (policies / "data.json").write_text(json.dumps(data))
    settings = Settings(home=tmp_path / "home", policies_dir=policies)
    settings.home.mkdir()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    store = SqlDemandHistory(engine)
    for s in snaps:
        beliefs = revise(None, s)
        store.record_sync(s.twin_id, s.observed_at, {n: b.demand for n, b in beliefs.nodes.items() if b.trusted})
    engine.dispose()
    return Night(settings, sim, snaps[-1].observed_at)


def _state(settings: Settings) -> tuple[int, int]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as c:
            inbox = c.execute(sa.select(sa.func.count()).select_from(approval_inbox)).scalar_one()
            audit = c.execute(sa.text("select count(*) from audit_events")).scalar_one()
    finally:
        engine.dispose()
    return inbox, audit


def test_nightly_rightsize_dry_run_auto_approves_one_step_parks_one_and_changes_nothing(night: Night) -> None:
    replicas = {n.id: n.replicas for n in night.simulator.snapshot().nodes}
    before = _state(night.settings)
    source = WallClockSimulatorSource(night.simulator, clock=lambda: night.at)
    report = dry_run("nightly-rightsize", night.settings, twin=source, clock=lambda: night.at + timedelta(seconds=5))

    assert report.playbook == "nightly-rightsize" and report.twin_id == "shop" and report.observed_at == night.at
    assert report.history.startswith("demand history of 'shop' from the controller database")
    held = {n.node: n.preconditions[0] for n in report.plan.nodes}
    assert held["catalog"].met and held["catalog"].detail == "held in all 24 buckets of the last 2 h"
    verdicts = {v.node: v for v in report.steps}
    assert set(verdicts) == {"catalog", "search"}
    assert verdicts["search"].verdict == "auto" and verdicts["search"].action == "scale search -> 10"
    assert verdicts["search"].text == "would run at once (policy auto-approves)"
    assert verdicts["catalog"].verdict == "queue" and verdicts["catalog"].action == "scale catalog -> 18"
    assert verdicts["catalog"].text == "would wait in the SRE queue for 1 approval from groups sre"
    assert all(d.allow for d in report.decisions.values()) and len(report.decisions) == 2
    assert json.loads(report.model_dump_json())["steps"][0]["node"] == "catalog"

    # Nothing changed: the estate's replicas, the inbox, the audit ledger.
    assert {n.id: n.replicas for n in night.simulator.snapshot().nodes} == replicas
    assert _state(night.settings) == before


def test_without_a_database_the_dry_run_says_there_is_no_history(night: Night, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "empty", policies_dir=night.settings.policies_dir)
    source = WallClockSimulatorSource(night.simulator, clock=lambda: night.at)
    report = dry_run("nightly-rightsize", settings, twin=source, clock=lambda: night.at + timedelta(seconds=5))
    assert report.history.startswith("no demand history: no controller database yet")
    assert report.plan.proposals == () and not (tmp_path / "empty").exists()
    assert all("no demand history" in n.reason for n in report.plan.nodes)
    assert {n.preconditions[0].detail for n in report.plan.nodes} <= {
        "no demand history: cannot show it held for 2 h",
        "does not hold now (it must hold for 2 h)",
    }
