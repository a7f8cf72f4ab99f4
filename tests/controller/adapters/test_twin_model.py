"""The twin model file: loads the demo model, and refuses bad ones naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.twin_model import NODE_METRICS, load_twin_model, parse_twin_model, promql_regex_alternation
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


# ---- batched templates ----------------------------------------------------------------------------

BATCHED = """\
twin_id: shop
range: 5s
node_label: service
queries:
  replicas:
    promql: kube_deployment_status_replicas_available{deployment=~"{{nodes}}"}
    by: deployment
  throughput: sum by (service) (rate(http_requests_total{service=~"{{nodes}}"}[{{range}}]))
  queue_depth: queue_depth{service="{{node}}"}
  ratio:
    promql: sum by (service, target) (x{service=~"{{sources}}"}) / on (service) group_left sum by (service) (y)
    by: [service, target]
nodes:
  - id: gateway
    capacity_per_replica: 200
  - id: checkout
    capacity_per_replica: 110
  - id: a.b
    capacity_per_replica: 10
    queries:
      throughput: null
edges:
  - {source: gateway, target: checkout}
  - {source: gateway, target: a.b}
  - {source: checkout, target: a.b, ratio: 0.5}
"""


def test_a_batched_template_is_one_query_for_every_node_using_it() -> None:
    model = parse_twin_model(BATCHED, "shop.yaml")
    plan = {(q.metric, q.promql): q for q in model.plan()}
    replicas = plan[("replicas", 'kube_deployment_status_replicas_available{deployment=~"gateway|checkout|a\\\\.b"}')]
    assert replicas.by == ("deployment",)
    assert [(k, m.node) for k, m in replicas.targets.items()] == [
        (("gateway",), "gateway"),
        (("checkout",), "checkout"),
        (("a.b",), "a.b"),
    ]
    # a.b turned throughput off: not in the regex.
    throughput = plan[("throughput", 'sum by (service) (rate(http_requests_total{service=~"gateway|checkout"}[5s]))')]
    assert throughput.by == ("service",) and len(throughput.targets) == 2
    assert "{{nodes}}" in throughput.template and "gateway" not in throughput.template  # what messages show
    # Per-node templates still run per node.
    assert sorted(q.promql for q in plan.values() if q.metric == "queue_depth") == [
        'queue_depth{service="a.b"}',
        'queue_depth{service="checkout"}',
        'queue_depth{service="gateway"}',
    ]
    # The measured edges in one query, keyed by (source, target); the fixed ratio not asked for.
    (ratio,) = [q for q in plan.values() if q.metric == "ratio"]
    assert ratio.promql.startswith('sum by (service, target) (x{service=~"gateway"})')
    assert ratio.by == ("service", "target")
    assert {k: (m.node, m.edge) for k, m in ratio.targets.items()} == {
        ("gateway", "checkout"): ("checkout", ("gateway", "checkout")),
        ("gateway", "a.b"): ("a.b", ("gateway", "a.b")),
    }
    assert len(plan) == 1 + 1 + 3 + 1
    # Chunks of at most `batch` ids.
    chunked = [q for q in model.plan(batch=2) if q.metric == "replicas"]
    assert [list(q.targets) for q in chunked] == [[("gateway",), ("checkout",)], [("a.b",)]]
    # Only some nodes (the demand history): their values and the edges into them.
    some = model.plan(nodes=["a.b"], metrics=["throughput", "ratio"])
    assert [(q.metric, [m.node for m in q.targets.values()]) for q in some] == [("ratio", ["a.b"])]
    # One node alone, as node_queries renders it.
    assert model.node_queries(model.nodes[2])["replicas"] == (
        'kube_deployment_status_replicas_available{deployment=~"a\\\\.b"}'
    )


def test_ids_are_escaped_for_a_regex_in_a_promql_string() -> None:
    assert promql_regex_alternation(["orders-db", "a.b", "x+y(1)"]) == "orders-db|a\\\\.b|x\\\\+y\\\\(1\\\\)"
    assert promql_regex_alternation(['q"t'], '"') == 'q\\"t'
    assert promql_regex_alternation(["q't"], "'") == "q\\'t"


def test_the_demo_model_is_batched() -> None:
    model = load_twin_model(DEMO)
    plan = model.plan()
    assert len(plan) == 8 + 1 and all(q.by for q in plan)
    assert [len(q.targets) for q in plan] == [5] * 8 + [4]


BATCHED_CASES = {
    "{{nodes}} mixed with {{node}}": (
        (
            'rate(http_requests_total{service=~"{{nodes}}"}',
            'rate(http_requests_total{service=~"{{nodes}}",x="{{node}}"}',
        ),
        "models/shop.yaml:8: queries.throughput",
        "uses both {{node}} and {{nodes}}",
    ),
    "{{sources}} mixed with {{source}}": (
        ('(x{service=~"{{sources}}"})', '(x{service=~"{{sources}}",t="{{target}}"})'),
        "models/shop.yaml:11: queries.ratio.promql",
        "mixes per-edge ({{source}}, {{target}}) and batched",
    ),
    "a label not matched against {{nodes}}": (
        ("    by: deployment", "    by: deploymnet"),
        "models/shop.yaml:7: queries.replicas.by",
        "label 'deploymnet' (`by`) is not matched against {{nodes}} in this template (it matches deployment)",
    ),
    "node_label not matched against {{nodes}}": (
        ("node_label: service", "node_label: job"),
        "models/shop.yaml:8: queries.throughput",
        "label 'job' (node_label) is not matched against {{nodes}}",
    ),
    "no label for a batched template": (
        ("node_label: service\n", ""),
        "models/shop.yaml:7: queries.throughput",
        "needs the label naming the node: `by` here or a model `node_label`",
    ),
    "not a label name": (
        ("    by: deployment", "    by: kube-deployment"),
        "models/shop.yaml:7: queries.replicas.by",
        "pattern",
    ),
    "{{nodes}} outside a regex matcher": (
        ('{deployment=~"{{nodes}}"}', '{deployment="{{nodes}}"}'),
        "models/shop.yaml:6: queries.replicas.promql",
        "whole quoted value of a regex matcher",
    ),
    "`by` on a per-node template": (
        ('{deployment=~"{{nodes}}"}', '{deployment="{{node}}"}'),
        "models/shop.yaml:7: queries.replicas.by",
        "`by` is for a batched template ({{nodes}}); this one is per node",
    ),
    "a batched ratio without by": (
        ("    by: [service, target]\n", ""),
        "models/shop.yaml:10: queries.ratio",
        "needs `by: [source label, target label]`",
    ),
    "a ratio keyed by a label not matched against {{sources}}": (
        ("    by: [service, target]", "    by: [source, target]"),
        "models/shop.yaml:12: queries.ratio.by",
        "label 'source' is not matched against {{sources}}",
    ),
    "a ratio keyed by one label": (
        ("    by: [service, target]", "    by: [service]"),
        "models/shop.yaml:12: queries.ratio.by",
        "at least 2 items",
    ),
    "unknown key in a query": (("    by: deployment", "    label: deployment"), "models/shop.yaml:7", "'label'"),
    "a query that is neither text nor mapping": (
        ('  queue_depth: queue_depth{service="{{node}}"}', "  queue_depth: 3"),
        "models/shop.yaml:9: queries.queue_depth",
        "a query is a PromQL template (text) or a mapping {promql, by}",
    ),
    "{{nodes}} in a per-node override, unknown label": (
        ("      throughput: null", '      throughput: {promql: "x{job=~\\"{{nodes}}\\"}", by: job2}'),
        "models/shop.yaml:21: nodes[2].queries.throughput.by",
        "label 'job2' (`by`) is not matched",
    ),
}


@pytest.mark.parametrize(("change", "where", "says"), BATCHED_CASES.values(), ids=BATCHED_CASES.keys())
def test_a_bad_batched_model_is_refused_naming_file_line_and_field(
    change: tuple[str, str], where: str, says: str
) -> None:
    parse_twin_model(BATCHED, "models/shop.yaml")  # the model itself is fine
    old, new = change
    assert old in BATCHED, old
    message = refusal(BATCHED.replace(old, new, 1))
    assert where in message and says in message, message
