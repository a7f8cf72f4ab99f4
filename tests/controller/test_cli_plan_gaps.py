"""`twinops plan --history` on a history with load gaps: no action, and it says why (not "no problem")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.cli import app

runner = CliRunner()
T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def _doc(i: int, ext: float | None, null: bool) -> dict[str, Any]:
    gateway: dict[str, Any] = {
        "id": "gateway",
        "replicas": 4,
        "capacity_per_replica": 250.0,
        "min_replicas": 2,
        "max_replicas": 20,
        "metrics": {"arrival_rate": 650.0, "throughput": 650.0, "utilization": 0.65},
    }
    if ext is not None or null:
        gateway["external_arrival_rate"] = ext
    return {
        "schema": "twin.v1",
        "twin_id": "shop",
        "observed_at": (T0 + timedelta(seconds=15 * i)).isoformat(),
        "nodes": [
            gateway,
            {
                "id": "recommendations",
                "replicas": 5,
                "capacity_per_replica": 150.0,
                "min_replicas": 2,
                "max_replicas": 20,
                "metrics": {"arrival_rate": 650.0, "throughput": 650.0, "utilization": 0.87},
            },
            {"id": "db", "kind": "database", "replicas": 2, "capacity_per_replica": 800.0, "max_replicas": 4},
        ],
        "edges": [
            {"source": "gateway", "target": "recommendations", "ratio": 1.0},
            {"source": "recommendations", "target": "db", "ratio": 1.0},
        ],
    }


@pytest.mark.parametrize("null", [False, True], ids=["key absent", "null"])
def test_plan_on_a_history_with_load_gaps_proposes_nothing_and_says_why(tmp_path: Path, null: bool) -> None:
    rates = [650.0] * 7 + [None, 650.0, None]
    history, snapshot = tmp_path / "h.jsonl", tmp_path / "s.json"
    history.write_text("".join(json.dumps(_doc(i, r, null)) + "\n" for i, r in enumerate(rates)))
    snapshot.write_text(json.dumps(_doc(len(rates) - 1, rates[-1], null)))
    result = runner.invoke(app, ["plan", "--snapshot", str(snapshot), "--history", str(history), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["actions"] == [] and doc["scale_down"] == []  # was: recommendations 5 -> 2, gateway 4 -> 2, ...
    assert doc["constraint"] == "recommendations"
    assert "No capacity problem found" not in doc["rationale"]
    assert "missing or contradictory data" in doc["rationale"] and "recommendations at 87%" in doc["rationale"]
    assert {n["node"] for n in doc["low_confidence"]} == {"gateway", "recommendations", "db"}
    detect = runner.invoke(app, ["detect", "--snapshot", str(snapshot), "--history", str(history), "--json"])
    findings = json.loads(detect.stdout)["findings"]
    assert any(
        f["kind"] == "data_quality" and f["node"] == "gateway" and "not reported" in f["message"] for f in findings
    )
    (at_risk,) = [f for f in findings if f["kind"] == "at_risk"]
    assert at_risk["node"] == "recommendations" and at_risk["confidence"] < 0.6
