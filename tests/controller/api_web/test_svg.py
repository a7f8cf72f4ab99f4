"""The proposal page's pictures: known contexts in, the expected SVG elements out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from controller.api.web.svg import band_of, graph_svg, predicted_after, sparkline_svg, sparklines

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)

CONTEXT = {
    "nodes": [
        {
            "id": "edge",
            "kind": "gateway",
            "demand_utilization": 0.55,
            "replicas": 4,
            "constraint": False,
            "hidden": False,
        },
        {
            "id": "checkout",
            "kind": "service",
            "demand_utilization": 1.25,
            "replicas": 3,
            "constraint": True,
            "hidden": False,
        },
        {
            "id": "payments",
            "kind": "service",
            "demand_utilization": 0.9,
            "replicas": 2,
            "constraint": False,
            "hidden": True,
        },
    ],
    "edges": [
        {"source": "edge", "target": "checkout", "ratio": 1.0},
        {"source": "checkout", "target": "payments", "ratio": 0.5},
    ],
    "history": {
        "checkout": [[(T0 + timedelta(seconds=15 * i)).isoformat(), 0.9 + 0.01 * i] for i in range(10)],
        "payments": [[(T0 + timedelta(seconds=15 * i)).isoformat(), 0.7] for i in range(10)],
    },
    "target_utilization": 0.8,
}


def parse(markup: str) -> ElementTree.Element:
    """The SVG as XML: it must be well-formed to be inlined in the page."""
    return ElementTree.fromstring(markup)


def test_bands_follow_the_target_and_capacity() -> None:
    assert [band_of(u, 0.8).name for u in (0.3, 0.7, 0.85, 1.0, 3.0)] == ["healthy", "near", "above", "over", "over"]
    assert band_of(None).name == "unknown"
    assert band_of(float("nan")).name == "unknown"
    assert band_of(float("inf")).name == "over"
    assert band_of("high").name == "unknown"


def test_graph_draws_every_node_and_edge_with_ratios_and_a_text_alternative() -> None:
    markup = graph_svg(CONTEXT)
    assert markup is not None
    svg = parse(markup)
    assert svg.get("role") == "img"
    title = svg.find("s:title", NS)
    desc = svg.find("s:desc", NS)
    assert title is not None and title.text == "Affected part of the graph: 3 nodes, constraint checkout"
    assert desc is not None and desc.text is not None
    assert "checkout (service): demand utilization 1.25, over capacity, 3 replicas, the constraint" in desc.text
    assert "payments to" not in desc.text and "checkout to payments, ratio 0.50" in desc.text
    assert svg.get("aria-labelledby") == "graph-title graph-desc"

    nodes = {g.get("data-node"): g for g in svg.iterfind(".//s:g[@data-node]", NS)}
    assert list(nodes) == ["edge", "checkout", "payments"]
    assert {n: g.get("data-band") for n, g in nodes.items()} == {
        "edge": "healthy",
        "checkout": "over",
        "payments": "above",
    }
    # Marked by shape and by a label, not by colour alone.
    checkout_rects = nodes["checkout"].findall("s:rect", NS)
    assert len(checkout_rects) == 2  # a double outline
    assert nodes["checkout"].get("class") == "node band-over constraint"
    assert "CONSTRAINT" in [t.text for t in nodes["checkout"].findall("s:text", NS)]
    assert nodes["payments"].find("s:rect", NS).get("stroke-dasharray") == "6 3"  # type: ignore[union-attr]
    assert "HIDDEN" in [t.text for t in nodes["payments"].findall("s:text", NS)]
    assert not any(t.text in ("CONSTRAINT", "HIDDEN") for t in nodes["edge"].findall("s:text", NS))

    edges = svg.findall(".//s:g[@class='edge']", NS)
    assert [(e.get("data-source"), e.get("data-target"), e.find("s:text", NS).text) for e in edges] == [  # type: ignore[union-attr]
        ("edge", "checkout", "×1"),
        ("checkout", "payments", "×0.5"),
    ]


def test_graph_lays_out_left_to_right_by_depth() -> None:
    svg = parse(graph_svg(CONTEXT) or "")
    xs = {g.get("data-node"): float(g.find("s:rect", NS).get("x")) for g in svg.iterfind(".//s:g[@data-node]", NS)}  # type: ignore[union-attr, arg-type]
    assert xs["edge"] < xs["checkout"] < xs["payments"]


def test_graph_escapes_names_and_survives_junk() -> None:
    context = {
        "nodes": [
            {"id": "<script>alert(1)</script>", "demand_utilization": "lots"},
            {"id": "b", "demand_utilization": None},
            {"kind": "no id"},
            "not a node",
        ],
        "edges": [
            {"source": "<script>alert(1)</script>", "target": "b", "ratio": None},
            {"source": "b", "target": "gone"},
        ],
    }
    markup = graph_svg(context)
    assert markup is not None and "<script>" not in markup
    svg = parse(markup)
    assert len(svg.findall(".//s:g[@data-node]", NS)) == 2
    edge = svg.find(".//s:g[@class='edge']", NS)
    assert edge is not None and edge.find("s:text", NS) is None  # no ratio, no label


def test_a_cycle_still_draws() -> None:
    context = {
        "nodes": [{"id": "a", "demand_utilization": 0.5}, {"id": "b", "demand_utilization": 0.5}],
        "edges": [{"source": "a", "target": "b", "ratio": 1}, {"source": "b", "target": "a", "ratio": 0.1}],
    }
    svg = parse(graph_svg(context) or "")
    assert len(svg.findall(".//s:g[@class='edge']", NS)) == 2


def test_no_context_no_graph() -> None:
    assert graph_svg(None) is None
    assert graph_svg({"nodes": []}) is None
    assert sparklines(None) == []


def test_sparkline_draws_history_target_and_the_predicted_value() -> None:
    spark = sparkline_svg("checkout", CONTEXT["history"]["checkout"], target=0.8, predicted=0.62)  # type: ignore[index]
    svg = parse(spark.svg)
    path = svg.find("s:path[@class='history']", NS)
    assert path is not None and path.get("d", "").count("M") == 1 and path.get("d", "").count("L") == 9
    assert svg.find("s:line[@class='target']", NS) is not None
    assert svg.find("s:path[@class='predicted']", NS) is not None
    assert svg.find("s:line[@class='to-after']", NS) is not None
    # Higher utilization is drawn higher: the target line (0.8) sits below the last point (0.99).
    target_y = float(svg.find("s:line[@class='target']", NS).get("y1"))  # type: ignore[union-attr, arg-type]
    now_y = float(svg.find("s:circle[@class='now']", NS).get("cy"))  # type: ignore[union-attr, arg-type]
    assert now_y < target_y
    assert spark.last == 0.99 and spark.predicted == 0.62
    assert spark.summary == (
        "checkout: demand utilization 0.90 to 0.99 over 2 min, peak 0.99; predicted 0.62 after the fix; target 0.80"
    )


def test_a_node_with_no_history_says_so() -> None:
    spark = sparkline_svg("quiet", [], target=0.8, predicted=0.4)
    svg = parse(spark.svg)
    assert svg.find("s:path[@class='history']", NS) is None
    text = svg.find("s:text[@class='no-history']", NS)
    assert text is not None and text.text == "no history"
    assert svg.find("s:path[@class='predicted']", NS) is not None
    assert spark.summary == "quiet: no history recorded; predicted 0.40 after the fix; target 0.80"


def test_a_gap_breaks_the_line() -> None:
    points = [[(T0 + timedelta(seconds=15 * i)).isoformat(), 0.5] for i in range(5)]
    points.append([(T0 + timedelta(seconds=75)).isoformat(), None])  # a sample without the load it needs
    points += [[(T0 + timedelta(seconds=15 * i)).isoformat(), 0.6] for i in range(6, 9)]
    points += [[(T0 + timedelta(seconds=600)).isoformat(), 0.7], [(T0 + timedelta(seconds=615)).isoformat(), 0.7]]
    spark = sparkline_svg("svc", points)
    d = parse(spark.svg).find("s:path[@class='history']", NS).get("d", "")  # type: ignore[union-attr]
    assert d.count("M") == 3, d  # before the null, after it, and after the long silence
    assert "with gaps in the history" in spark.summary


def test_a_lone_point_is_a_dot_and_junk_points_are_skipped() -> None:
    spark = sparkline_svg("svc", [["not a time", 0.5], [T0.isoformat(), 0.5], "junk", [T0.isoformat()]])
    svg = parse(spark.svg)
    assert svg.find("s:path[@class='history']", NS) is None
    assert len(svg.findall("s:circle", NS)) == 2  # the point itself and the "now" marker on it


def test_sparklines_share_one_window_constraint_first_with_predictions() -> None:
    plan = {"predicted": {"checkout": {"utilization_after": 0.7}, "payments": {"utilization_after": "?"}}}
    assert predicted_after(plan) == {"checkout": 0.7}
    sparks = sparklines(CONTEXT, predicted_after(plan))
    assert [s.node for s in sparks] == ["checkout", "payments", "edge"]
    assert sparks[0].predicted == 0.7 and sparks[1].predicted is None
    assert sparks[2].last is None and "no history" in sparks[2].svg
    first_x = [float(m) for m in re.findall(r'class="history" d="M([\d.]+),', sparks[0].svg + sparks[1].svg)]
    assert first_x == [5.0, 5.0]  # both start at the window's left edge
