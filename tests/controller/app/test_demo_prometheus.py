"""`twinops demo --prometheus`: part (a) end to end through a real Prometheus scraping the simulator.

simulator -> scrape -> PromQL -> twin.v1 -> agent -> proposal -> approval -> signed webhook -> simulator.
The ledger shows what the agent saw and what the webhook answered; Prometheus' own data, reopened
after the demo, shows the scaled replicas arriving at the simulator and being scraped back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.promstack import prometheus_server, requires_prometheus

pytestmark = [pytest.mark.integration, requires_prometheus]

TWINOPS = Path(sys.executable).with_name("twinops")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "TWINOPS_HOME": str(home), "TWINOPS_TEMPORAL_UI": "false", "COLUMNS": "200"}
    for name in ("TWINOPS_TOKEN", "TWINOPS_API_URL", "TWINOPS_TWIN_SOURCE", "TWINOPS_ACTUATOR", "TWINOPS_LOG_LEVEL"):
        env.pop(name, None)
    return env


def _events(home: Path) -> list[dict[str, Any]]:
    exported = subprocess.run(
        [str(TWINOPS), "audit", "export", "--format", "jsonl"],
        env=_env(home),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = (json.loads(line) for line in exported.stdout.splitlines() if line.strip())
    return [e for e in lines if e.get("type") == "event"]


def test_the_demo_runs_its_first_scenario_through_prometheus(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [str(TWINOPS), "demo", "--prometheus"], env=_env(home), capture_output=True, text=True, timeout=150
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "demo finished as expected" in out, out[-4000:]
    assert re.search(r"through Prometheus http://127\.0\.0\.1:\d+", out), out[:3000]
    served = re.search(r"Prometheus answered (\d+) PromQL requests; the simulator applied (\d+) signed action", out)
    assert served, out[-4000:]
    # Snapshots, verification and the history behind forecasts were all PromQL; gateway and checkout scaled.
    assert int(served.group(1)) > 0
    assert int(served.group(2)) == 2
    assert "(b) a bad release" not in out

    events = _events(home)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "proposed" and kinds[-1] == "completed", kinds
    assert "verified" in kinds and "rolled_back" not in kinds, kinds
    assert events[-1]["payload"]["outcome"] == "succeeded"
    # What the agent believed was read through the rates of the scrapes, not the simulator's exact 1200 rps.
    verified = next(e for e in events if e["kind"] == "verified")
    demand = verified["payload"]["goal"]["predicted"]["gateway"]["demand_rps"]
    assert demand == pytest.approx(1200.0, rel=0.05)
    assert verified["payload"]["observed"]["gateway"]["replicas"] == 8
    # The webhook actuator's answers are the exporter's (SignedActionReceiver), undo included.
    applied = [e["payload"]["result"] for e in events if e["kind"] == "step_succeeded"]
    assert [r["undo"] for r in applied] == [
        {"node": "gateway", "replicas": 4, "type": "scale"},
        {"node": "checkout", "replicas": 4, "type": "scale"},
    ]
    assert all(r["applied"] and r["detail"] == "applied" for r in applied)

    # The demo's Prometheus data, reopened: the simulator's replicas went 4 -> 8 and 4 -> 6 and were scraped back.
    model = (home / "prometheus" / "demo-twin-model.yaml").read_text()
    assert re.search(r"^range: 5s$", model, re.MULTILINE), model
    with prometheus_server(home / "prometheus", config={"global": {"scrape_interval": "1m"}}) as prom:
        for node, before, after in (("gateway", 4, 8), ("checkout", 4, 6)):
            series = f'kube_deployment_spec_replicas{{deployment="{node}"}}[15m]'
            low = prom.query(f"min_over_time({series})")
            high = prom.query(f"max_over_time({series})")
            assert [float(s["value"][1]) for s in low] == [before], low
            assert [float(s["value"][1]) for s in high] == [after], high
