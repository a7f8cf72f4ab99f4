"""The twin model file: loads the demo model, and refuses bad ones naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.twin_model import NODE_METRICS, load_twin_model, parse_twin_model
from controller.core.errors import ConfigurationError

DEMO = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "demo-twin-model.yaml"
SCENARIO = Path(__file__).resolve().parents[3] / "twin" / "scenarios" / "hidden_downstream.yaml"

GOOD = """\
twin_id: shop
range: 5s
queries:
  replicas: kube_deployment_status_replicas_available{deployment="{{node}}"}
  throughput: sum(rate(http_requests_total{service="{{node}}"}[{{range}}]))
  ratio: x{s="{{source}}",t="{{target}}"}
nodes:
  - id: gateway
    capacity_per_replica: 200
    max_replicas: 20
  - id: checkout
    capacity_per_replica: 110
    queries:
      throughput: null
edges:
  - {source: gateway, target: checkout}
"""


def refusal(text: str) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse_twin_model(text, "models/shop.yaml")
    return str(info.value)


def test_the_demo_model_loads_and_matches_its_scenario() -> None:
    import yaml

    model = load_twin_model(DEMO)
    scenario = yaml.safe_load(SCENARIO.read_text())
    assert model.twin_id == scenario["twin_id"]
    assert [(n.id, n.capacity_per_replica, n.min_replicas, n.max_replicas, n.tags) for n in model.nodes] == [
        (n["id"], n["capacity_per_replica"], n["min_replicas"], n["max_replicas"], n["tags"]) for n in scenario["nodes"]
    ]
    assert [(e.source, e.target) for e in model.edges] == [(e["source"], e["target"]) for e in scenario["edges"]]
    for node in model.nodes:
        assert set(model.node_queries(node)) == set(NODE_METRICS)  # every value measured, none declared
    assert all(model.edge_query(e) for e in model.edges)  # every ratio measured too


def test_templates_are_rendered_per_node_and_edge_with_overrides() -> None:
    model = parse_twin_model(GOOD, "shop.yaml")
    gateway, checkout = model.nodes
    assert model.node_queries(gateway)["throughput"] == 'sum(rate(http_requests_total{service="gateway"}[5s]))'
    assert "throughput" not in model.node_queries(checkout)  # null turns the default off
    assert model.edge_query(model.edges[0]) == 'x{s="gateway",t="checkout"}'
    fixed = parse_twin_model(
        GOOD.replace("{source: gateway, target: checkout}", "{source: gateway, target: checkout, ratio: 0.4}"), "f"
    )
    assert fixed.edge_query(fixed.edges[0]) is None


CASES = {
    "unknown placeholder": (
        ('"{{node}}"}\n  throughput', '"{{nod}}"}\n  throughput'),
        "models/shop.yaml:4: queries.replicas",
        "unknown placeholder {{nod}}",
    ),
    "edge placeholder in a node query": (
        ("      throughput: null", '      throughput: x{a="{{source}}"}'),
        "models/shop.yaml:14: nodes[1].queries.throughput",
        "unknown placeholder {{source}}",
    ),
    "unknown metric": (("  throughput: sum", "  thruput: sum"), "models/shop.yaml:5: queries.thruput", "'thruput'"),
    "unknown metric in an override": (
        ("      throughput: null", "      p99: null"),
        "models/shop.yaml:14: nodes[1].queries.p99",
        "unknown metric 'p99'",
    ),
    "edge to an unknown node": (
        ("target: checkout}", "target: checkoot}"),
        "models/shop.yaml:16: edges[0].target",
        "unknown node 'checkoot'",
    ),
    "bad capacity": (
        ("capacity_per_replica: 110", "capacity_per_replica: -1"),
        "models/shop.yaml:12: nodes[1].capacity_per_replica",
        "greater than 0",
    ),
    "bad range": (("range: 5s", "range: five"), "models/shop.yaml:2: range", "should match pattern"),
    "duplicate node": (
        ("  - id: checkout\n", "  - id: gateway\n"),
        "models/shop.yaml:11: nodes[1].id",
        "duplicate node id 'gateway'",
    ),
}


@pytest.mark.parametrize(("change", "where", "says"), CASES.values(), ids=CASES.keys())
def test_a_bad_model_is_refused_naming_file_line_and_field(change: tuple[str, str], where: str, says: str) -> None:
    old, new = change
    assert old in GOOD
    message = refusal(GOOD.replace(old, new, 1))
    assert where in message and says in message, message


def test_bad_yaml_names_file_and_line() -> None:
    message = refusal(GOOD.replace("  - id: checkout", "  - id: [checkout"))
    assert message.startswith("models/shop.yaml:12:25: not valid YAML") and "began on line 11" in message, message


def test_a_model_that_is_not_a_mapping_speaks_of_a_twin_model() -> None:
    assert "a twin model is a mapping" in refusal("- just a list\n")


def test_every_node_needs_a_replicas_query() -> None:
    message = refusal(
        GOOD.replace('  replicas: kube_deployment_status_replicas_available{deployment="{{node}}"}\n', "")
    )
    assert "nodes[0].queries.replicas" in message and "no replicas query" in message


def test_an_edge_needs_a_ratio_or_a_query_and_not_both() -> None:
    no_default = GOOD.replace('  ratio: x{s="{{source}}",t="{{target}}"}\n', "")
    assert "edges[0]: edge 'gateway'->'checkout': no ratio" in refusal(no_default)
    both = GOOD.replace("target: checkout}", 'target: checkout, ratio: 0.4, query: "y"}')
    assert "edges[0].query: edge 'gateway'->'checkout': give a fixed ratio or a query, not both" in refusal(both)


def test_a_cycle_is_refused() -> None:
    text = GOOD + "  - {source: checkout, target: gateway}\n"
    assert "edges form a cycle" in refusal(text)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.yaml: cannot read the twin model"):
        load_twin_model(tmp_path / "missing.yaml")
