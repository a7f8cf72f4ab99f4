"""Detection: every finding kind and the constraint."""

from __future__ import annotations

import pytest

from agents import Desires, FindingKind, detect, revise
from tests.agents.conftest import hidden_downstream, metrics, node, ramp, snap


def kinds(detection: object) -> dict[str, set[FindingKind]]:
    out: dict[str, set[FindingKind]] = {}
    for f in detection.findings:  # type: ignore[attr-defined]
        out.setdefault(f.node, set()).add(f.kind)
    return out


def test_saturated_and_hidden_saturated() -> None:
    detection = detect(revise(None, hidden_downstream()))
    assert detection.constraint == "api"
    found = {f.node: f for f in detection.of_kind(FindingKind.SATURATED)}
    assert set(found) == {"api", "db"}
    assert found["db"].hidden and not found["api"].hidden
    assert found["api"].demand_utilization == pytest.approx(1.2)


def test_at_risk_uses_the_node_target() -> None:
    s = snap([node("a", 10, 100.0, ext=850.0, tags={"tier": "critical"}), node("b", 10, 100.0, ext=750.0)])
    desires = Desires(targets=({"tag": "tier=critical", "utilization": 0.9},))
    assert kinds(detect(revise(None, s), desires)).get("a", set()) & set(FindingKind) == {FindingKind.DATA_QUALITY}
    desires = Desires(targets=({"node": "b", "utilization": 0.7},))
    assert FindingKind.AT_RISK in kinds(detect(revise(None, s), desires))["b"]
    assert FindingKind.AT_RISK in kinds(detect(revise(None, s)))["a"]


def test_predicted_with_eta() -> None:
    snaps = ramp([500 + 10 * i for i in range(10)])  # +10 rps/min, at 590 now; 800 reached in 21 min
    beliefs = revise(None, snaps[-1], snaps[:-1])
    (finding,) = detect(beliefs, Desires(horizon_seconds=1800)).of_kind(FindingKind.PREDICTED)
    assert finding.node == "api"
    assert finding.eta_seconds == pytest.approx((800 - 590) / (10 / 60), rel=1e-6)
    assert detect(beliefs, Desires(horizon_seconds=600)).of_kind(FindingKind.PREDICTED) == ()


def test_latency_slo() -> None:
    s = snap([node("a", 10, 100.0, ext=100.0, metrics=metrics(100.0, 100.0, 0.1, latency_p95_ms=900.0))])
    desires = Desires(latency_slo_ms={"a": 250.0})
    (finding,) = detect(revise(None, s), desires).of_kind(FindingKind.LATENCY_SLO)
    assert finding.node == "a" and "900 ms" in finding.message


def test_data_quality() -> None:
    s = snap([node("a", 2, 100.0, ext=50.0, metrics=metrics(400.0, 390.0, 1.95))])
    found = detect(revise(None, s)).of_kind(FindingKind.DATA_QUALITY)
    assert found and all(f.node == "a" and "contradiction" in f.message for f in found)


def test_no_load_no_constraint() -> None:
    assert detect(revise(None, snap([node("a", 2, 100.0)]))).constraint is None
