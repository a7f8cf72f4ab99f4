"""deploy/grafana/twinops.json: well formed, and no query names a metric twinops does not expose.

`promql_metric_names` pulls the metric names out of a PromQL expression; `exposed_metric_names`
lists what `controller.adapters.metrics` exposes (a histogram's _bucket/_count/_sum, a counter's
_total) plus the recording rules of deploy/prometheus/rules.yaml. The rules' test uses both too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.adapters.audit import NoteSigner, SqlAuditLedger
from controller.adapters.metrics import TwinopsMetrics
from controller.core.db import create_engine, migrate
from tests.controller.adapters.audit.factory import step_event
from tests.promstack import prometheus_server, requires_prometheus

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "twinops.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
PROMETHEUS_BUILTINS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})
"""Series Prometheus makes itself (scrape health, alert state)."""

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf",
     "nan", "atan2"}
)  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords or label names."""
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "x", expr)  # Grafana variables
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names: set[str] = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = found.group(), text[found.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name) or text[found.start() - 1 : found.start()].isdigit():
            continue
        names.add(name)
    return names


def recording_rules() -> set[str]:
    """The names deploy/prometheus/rules.yaml records."""
    doc = yaml.safe_load(RULES.read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule}


def exposed_metric_names(workdir: Path) -> set[str]:
    """Every sample name the metrics module exposes (with a database that has events and a head)."""
    engine = create_engine(f"sqlite:///{workdir / 'names.db'}")
    migrate(engine)
    ledger = SqlAuditLedger(engine, NoteSigner("twinops.test/audit", Ed25519PrivateKey.generate()))
    ledger.append_sync(step_event(0))  # the first event is signed at once: every head family is there
    metrics = TwinopsMetrics()
    metrics.watch_database(engine)
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    engine.dispose()
    return names


def dashboard_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows too."""
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every target."""
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard_panels(doc) for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def known_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return exposed_metric_names(tmp_path_factory.mktemp("names")) | recording_rules() | PROMETHEUS_BUILTINS


def test_the_name_extractor_finds_metrics_and_skips_functions_labels_and_variables() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, package) (rate(twinops_policy_decision_seconds_bucket{job=~"$job"}'
        "[$__rate_interval]))) / on (package) group_left max without (instance) (twinops:queue_sla_seconds "
        'offset 5m) > bool 2 and absent(nonexistent_metric{code="a b"}) or vector(1)'
    )
    assert promql_metric_names(expr) == {
        "twinops_policy_decision_seconds_bucket",
        "twinops:queue_sla_seconds",
        "nonexistent_metric",
    }


def test_the_dashboard_is_well_formed() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "twinops" and doc["title"] == "twinops"
    panels = list(dashboard_panels(doc))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in panels:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_dashboard_query_names_only_metrics_twinops_exposes(known_names: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    unknown = {(title, name) for title, expr in exprs for name in promql_metric_names(expr) if name not in known_names}
    assert not unknown, f"queries name metrics that do not exist: {sorted(unknown)}"
    used = {name for _, expr in exprs for name in promql_metric_names(expr)}
    # Every family the issue asks for is on the dashboard.
    for wanted in (
        "twinops_queue_depth",
        "twinops_queue_oldest_pending_age_seconds",
        "twinops_proposal_outcomes_total",
        "twinops_audit_events_total",
        "twinops_policy_decision_seconds_bucket",
        "twinops_policy_denials_total",
        "twinops_policy_failures_total",
        "twinops_tick_duration_seconds_bucket",
        "twinops_snapshot_age_seconds",
        "twinops_audit_append_seconds_bucket",
        "twinops_audit_unsigned_age_seconds",
        "twinops_audit_unsigned_events",
    ):
        assert wanted in used, f"{wanted} is on no panel"


def test_a_misspelled_metric_would_be_caught(known_names: set[str]) -> None:
    assert promql_metric_names("sum(rate(twinops_audit_event_total[5m]))") - known_names == {
        "twinops_audit_event_total"
    }


@requires_prometheus
def test_every_dashboard_query_parses_in_a_real_prometheus(tmp_path: Path) -> None:
    """Prometheus itself parses each query (Grafana's variables replaced as Grafana would)."""
    with prometheus_server(tmp_path / "prom", targets=[]) as prom:
        for title, expr in dashboard_exprs():
            promql = expr.replace("$__rate_interval", "1m").replace("$job", ".+")
            prom.query(promql)  # raises on a parse error, naming the query
            assert title
