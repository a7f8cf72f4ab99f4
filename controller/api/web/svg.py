"""Server-rendered SVG for the proposal page: the affected part of the twin's graph, and utilization sparklines.

Pure functions from the proposal's recorded `context` (nodes, edges, utilization history,
target) to markup: the picture is the same in every browser and in a screenshot, needs no
script, and carries its own text alternative. Colour is never the only signal: the
constraint and the hidden nodes also get a shape (double or dashed outline) and a label.
Bad or missing numbers draw as "no data", never as an error: an approver at 3 a.m. needs
the page, not a stack trace.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "Band",
    "Sparkline",
    "band_of",
    "graph_svg",
    "legend",
    "predicted_after",
    "sparkline_svg",
    "sparklines",
]

DEFAULT_TARGET = 0.8

# Graph geometry (user units; the SVG scales to its container through its viewBox).
_NODE_W, _NODE_H = 156, 50
_COL_PITCH, _ROW_PITCH = 226, 84
_MARGIN_X, _MARGIN_TOP, _MARGIN_BOTTOM = 14, 30, 14
_LABEL_CHARS = 20

# Sparkline geometry: the history on the left, the "after the fix" column on the right.
_SPARK_W, _SPARK_H = 240, 56
_SPARK_PAD = 5
_AFTER_W = 40
# A step this many times the median sampling interval is a gap in the history, not a line.
_GAP_FACTOR = 3.0


@dataclass(frozen=True)
class Band:
    """How full a node is, as a colour and the words that say the same without colour."""

    name: str
    words: str
    fill: str


_BANDS = {
    "unknown": Band("unknown", "no data", "#e5e7eb"),
    "healthy": Band("healthy", "below target", "#bbf7d0"),
    "near": Band("near", "near target", "#fde68a"),
    "above": Band("above", "above target", "#fdba74"),
    "over": Band("over", "over capacity", "#fca5a5"),
}


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN, infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def band_of(utilization: Any, target: float = DEFAULT_TARGET) -> Band:
    """The band of a demand utilization against the target (over capacity at 1.0 and beyond)."""
    u = _number(utilization)
    if u is None:
        # Infinite demand on zero capacity is over capacity, not unknown.
        return _BANDS["over"] if isinstance(utilization, float) and utilization == math.inf else _BANDS["unknown"]
    if u >= 1.0:
        return _BANDS["over"]
    if u >= target:
        return _BANDS["above"]
    if u >= 0.8 * target:
        return _BANDS["near"]
    return _BANDS["healthy"]


def legend() -> list[Band]:
    """The bands in order, for the page's legend."""
    return [_BANDS[k] for k in ("healthy", "near", "above", "over", "unknown")]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _target_of(context: Mapping[str, Any]) -> float:
    target = _number(context.get("target_utilization"))
    return target if target is not None and target > 0 else DEFAULT_TARGET


def _layers(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Column per node: the longest path from a node nobody feeds (bounded, so a cycle cannot loop forever)."""
    layer = dict.fromkeys(ids, 0)
    for _ in range(len(ids)):
        changed = False
        for source, target in edges:
            if source != target and layer[target] < layer[source] + 1 <= len(ids) - 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def _positions(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Top-left corner per node: columns by layer, rows ordered by the mean row of their feeders."""
    layer = _layers(ids, edges)
    columns: dict[int, list[str]] = {}
    for node in ids:
        columns.setdefault(layer[node], []).append(node)
    row: dict[str, float] = {}
    for col in sorted(columns):
        members = columns[col]

        def key(node: str) -> tuple[float, str]:
            feeders = [row[s] for s, t in edges if t == node and s in row]
            return (sum(feeders) / len(feeders) if feeders else math.inf, node)

        members.sort(key=key)
        for i, node in enumerate(members):
            row[node] = i
    tallest = max(len(m) for m in columns.values())
    placed: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        offset = (tallest - len(members)) * _ROW_PITCH / 2  # centre short columns
        for node in members:
            placed[node] = (_MARGIN_X + col * _COL_PITCH, _MARGIN_TOP + offset + row[node] * _ROW_PITCH)
    return placed


def _node_words(node: Mapping[str, Any], target: float) -> str:
    u = _number(node.get("demand_utilization"))
    parts = [f"{node['id']} ({node.get('kind') or 'node'}): demand utilization {_fmt(u)}, {band_of(u, target).words}"]
    replicas = node.get("replicas")
    if isinstance(replicas, int):
        parts.append(f"{replicas} replicas")
    if node.get("constraint"):
        parts.append("the constraint")
    if node.get("hidden"):
        parts.append("hidden (its own metrics look healthier than its demand)")
    return ", ".join(parts)


def _marks(node: Mapping[str, Any]) -> str:
    return " · ".join(m for m, on in (("CONSTRAINT", node.get("constraint")), ("HIDDEN", node.get("hidden"))) if on)


def _clean_graph(context: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, str, float | None]]]:
    """The nodes with an id (first of each id) and the edges between them; anything else is dropped."""
    nodes: dict[str, dict[str, Any]] = {}
    for raw in context.get("nodes") or ():
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) and raw["id"] not in nodes:
            nodes[raw["id"]] = dict(raw)
    edges: list[tuple[str, str, float | None]] = []
    for raw in context.get("edges") or ():
        if not isinstance(raw, Mapping):
            continue
        source, target = raw.get("source"), raw.get("target")
        if isinstance(source, str) and isinstance(target, str) and source in nodes and target in nodes:
            edges.append((source, target, _number(raw.get("ratio"))))
    return list(nodes.values()), edges


def graph_svg(context: Mapping[str, Any] | None, *, element_id: str = "graph") -> Markup | None:
    """The affected part of the graph as an inline SVG with a title and a description; None with no nodes."""
    if not context:
        return None
    nodes, edges = _clean_graph(context)
    if not nodes:
        return None
    target = _target_of(context)
    ids = [n["id"] for n in nodes]
    placed = _positions(ids, [(s, t) for s, t, _ in edges])
    width = max(x for x, _ in placed.values()) + _NODE_W + _MARGIN_X
    height = max(y for _, y in placed.values()) + _NODE_H + _MARGIN_BOTTOM
    constraint = next((n["id"] for n in nodes if n.get("constraint")), None)
    title = f"Affected part of the graph: {len(nodes)} nodes" + (f", constraint {constraint}" if constraint else "")
    desc = "; ".join(_node_words(n, target) for n in nodes)
    if edges:
        desc += ". Edges: " + "; ".join(f"{s} to {t}, ratio {_fmt(r)}" for s, t, r in edges)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" id="{escape(element_id)}" role="img"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}"'
        f' aria-labelledby="{escape(element_id)}-title {escape(element_id)}-desc">',
        f'<title id="{escape(element_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(element_id)}-desc">{escape(desc)}.</desc>',
        "<defs>"
        f'<marker id="{escape(element_id)}-arrow" viewBox="0 0 10 10" refX="10" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#374151"/></marker>'
        "</defs>",
    ]
    for source, dest, ratio in edges:
        out.append(_edge(placed[source], placed[dest], ratio, source, dest, element_id))
    for node in nodes:
        out.append(_node(node, placed[node["id"]], target))
    out.append("</svg>")
    return Markup("".join(out))


def _edge(
    a: tuple[float, float], b: tuple[float, float], ratio: float | None, source: str, dest: str, element_id: str
) -> str:
    (ax, ay), (bx, by) = a, b
    x1, y1 = ax + _NODE_W, ay + _NODE_H / 2
    x2, y2 = bx, by + _NODE_H / 2
    if x2 <= x1:  # a back edge (a cycle, or a self-loop): arc above the boxes
        x1, x2 = ax + _NODE_W / 2, bx + _NODE_W / 2
        y1, y2 = ay, by
        lift = min(y1, y2) - 26
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{lift:.1f} {x2 + 30:.1f},{lift:.1f} {x2:.1f},{y2:.1f}"
        mx, my = (x1 + x2) / 2 + 8, lift + 6
    else:
        bend = (x2 - x1) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 5
    label = "" if ratio is None else f"×{ratio:g}"
    return (
        f'<g class="edge" data-source="{escape(source)}" data-target="{escape(dest)}">'
        f'<path d="{path}" fill="none" stroke="#374151" stroke-width="1.5"'
        f' marker-end="url(#{escape(element_id)}-arrow)"/>'
        + (
            f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" class="ratio">{escape(label)}</text>'
            if label
            else ""
        )
        + "</g>"
    )


def _node(node: Mapping[str, Any], at: tuple[float, float], target: float) -> str:
    x, y = at
    u = _number(node.get("demand_utilization"))
    band = band_of(node.get("demand_utilization"), target)
    replicas = node.get("replicas")
    detail = f"util {_fmt(u)}" + (f" · {replicas} repl." if isinstance(replicas, int) else "")
    classes = ["node", f"band-{band.name}"]
    dash = ""
    if node.get("constraint"):
        classes.append("constraint")
    if node.get("hidden"):
        classes.append("hidden")
        dash = ' stroke-dasharray="6 3"'
    stroke = 3 if node.get("constraint") else 1.5
    parts = [
        f'<g class="{" ".join(classes)}" data-node="{escape(node["id"])}" data-band="{band.name}">',
        f"<title>{escape(_node_words(node, target))}</title>",
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{_NODE_W}" height="{_NODE_H}" rx="6" fill="{band.fill}"'
        f' stroke="#111827" stroke-width="{stroke}"{dash}/>',
    ]
    if node.get("constraint"):  # a second, inner outline: the shape says "constraint" without colour
        parts.append(
            f'<rect x="{x + 4:.1f}" y="{y + 4:.1f}" width="{_NODE_W - 8}" height="{_NODE_H - 8}" rx="4"'
            ' fill="none" stroke="#111827" stroke-width="1"/>'
        )
    marks = _marks(node)
    if marks:
        parts.append(f'<text x="{x + 2:.1f}" y="{y - 6:.1f}" class="mark">{escape(marks)}</text>')
    parts.append(f'<text x="{x + 10:.1f}" y="{y + 21:.1f}" class="name">{escape(_short(node["id"]))}</text>')
    parts.append(f'<text x="{x + 10:.1f}" y="{y + 38:.1f}" class="detail">{escape(detail)}</text>')
    parts.append("</g>")
    return "".join(parts)


@dataclass(frozen=True)
class Sparkline:
    """One node's utilization over the history window, and what the page says about it in words."""

    node: str
    svg: Markup
    summary: str
    last: float | None
    predicted: float | None


def _points(raw: Any) -> list[tuple[datetime, float | None]]:
    """(time, utilization) pairs in time order; unreadable times are dropped, unreadable values become gaps."""
    points: list[tuple[datetime, float | None]] = []
    for item in raw or ():
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            continue
        when, value = item
        try:
            at = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
        except ValueError:
            continue
        if at.tzinfo is None:
            continue
        points.append((at, _number(value)))
    points.sort(key=lambda p: p[0])
    return points


def _segments(points: Sequence[tuple[datetime, float | None]]) -> list[list[tuple[datetime, float]]]:
    """Runs of readable points with no gap in time; a missing value or a long silence starts a new run."""
    times = [t for t, _ in points]
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    positive = [s for s in steps if s > 0]
    limit = median(positive) * _GAP_FACTOR if positive else math.inf
    runs: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    previous: datetime | None = None
    for at, value in points:
        if value is None:
            if current:
                runs.append(current)
            current, previous = [], None
            continue
        if previous is not None and (at - previous).total_seconds() > limit and current:
            runs.append(current)
            current = []
        current.append((at, value))
        previous = at
    if current:
        runs.append(current)
    return runs


def sparkline_svg(
    node: str,
    history: Any,
    *,
    target: float = DEFAULT_TARGET,
    predicted: float | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Sparkline:
    """A small line chart of `node`'s demand utilization, the target line, and the value predicted after the fix.

    `window` gives every node of a proposal the same time axis; by default it is this node's own span.
    """
    points = _points(history)
    runs = _segments(points)
    values = [v for run in runs for _, v in run]
    last = values[-1] if values else None
    predicted = _number(predicted)
    top = max([1.0, target, *values, *([predicted] if predicted is not None else [])]) * 1.1
    plot_w = _SPARK_W - _AFTER_W - 2 * _SPARK_PAD
    plot_h = _SPARK_H - 2 * _SPARK_PAD
    if window is None and points:
        window = (points[0][0], points[-1][0])
    start, end = window if window else (None, None)
    span = (end - start).total_seconds() if start and end else 0.0

    def x_of(at: datetime) -> float:
        if not start or span <= 0:
            return _SPARK_PAD + plot_w
        return _SPARK_PAD + plot_w * min(1.0, max(0.0, (at - start).total_seconds() / span))

    def y_of(value: float) -> float:
        return _SPARK_PAD + plot_h * (1 - min(value, top) / top)

    target_y = y_of(target)
    summary = _spark_summary(node, values, last, predicted, target, span, gaps=len(runs) > 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" role="img" viewBox="0 0 {_SPARK_W} {_SPARK_H}"'
        f' width="{_SPARK_W}" height="{_SPARK_H}" data-node="{escape(node)}">',
        f"<title>{escape(summary)}</title>",
        f'<rect x="0" y="0" width="{_SPARK_W}" height="{_SPARK_H}" class="spark-bg"/>',
        f'<line class="target" x1="{_SPARK_PAD}" x2="{_SPARK_W - _SPARK_PAD}"'
        f' y1="{target_y:.1f}" y2="{target_y:.1f}"/>',
        f'<line class="after-divider" x1="{_SPARK_W - _AFTER_W:.1f}" x2="{_SPARK_W - _AFTER_W:.1f}"'
        f' y1="{_SPARK_PAD}" y2="{_SPARK_H - _SPARK_PAD}"/>',
    ]
    if runs:
        d = " ".join(
            "M" + " L".join(f"{x_of(at):.1f},{y_of(v):.1f}" for at, v in run)
            for run in runs
            if len(run) > 1  # a lone point is a dot, not a line
        )
        if d:
            out.append(f'<path class="history" d="{d}"/>')
        for run in runs:
            if len(run) == 1:
                at, v = run[0]
                out.append(f'<circle class="history-point" cx="{x_of(at):.1f}" cy="{y_of(v):.1f}" r="2"/>')
        at, v = runs[-1][-1]
        out.append(f'<circle class="now" cx="{x_of(at):.1f}" cy="{y_of(v):.1f}" r="3"/>')
    else:
        out.append(
            f'<text class="no-history" x="{_SPARK_PAD + plot_w / 2:.1f}" y="{_SPARK_H / 2 + 4:.1f}"'
            ' text-anchor="middle">no history</text>'
        )
    if predicted is not None:
        px, py = _SPARK_W - _AFTER_W / 2, y_of(predicted)
        if runs:
            at, v = runs[-1][-1]
            out.append(f'<line class="to-after" x1="{x_of(at):.1f}" y1="{y_of(v):.1f}" x2="{px:.1f}" y2="{py:.1f}"/>')
        # A diamond, not a dot: the prediction differs from the history by shape as well as colour.
        out.append(f'<path class="predicted" d="M{px:.1f},{py - 5:.1f} l5,5 l-5,5 l-5,-5 z"/>')
    out.append("</svg>")
    return Sparkline(node, Markup("".join(out)), summary, last, predicted)


def _spark_summary(
    node: str,
    values: Sequence[float],
    last: float | None,
    predicted: float | None,
    target: float,
    span: float,
    *,
    gaps: bool,
) -> str:
    if values:
        minutes = f" over {span / 60:.0f} min" if span >= 60 else ""
        head = f"{node}: demand utilization {_fmt(values[0])} to {_fmt(last)}{minutes}, peak {_fmt(max(values))}" + (
            ", with gaps in the history" if gaps else ""
        )
    else:
        head = f"{node}: no history recorded"
    after = f"; predicted {_fmt(predicted)} after the fix" if predicted is not None else ""
    return f"{head}{after}; target {_fmt(target)}"


def sparklines(context: Mapping[str, Any] | None, predicted_after: Mapping[str, Any] | None = None) -> list[Sparkline]:
    """One sparkline per node of the context (constraint first), all on the same time window.

    `predicted_after` maps a node to its predicted utilization after the fix (the plan's
    `utilization_after`); nodes the plan does not touch have none.
    """
    if not context:
        return []
    nodes, _ = _clean_graph(context)
    history = context.get("history") if isinstance(context.get("history"), Mapping) else {}
    assert isinstance(history, Mapping)
    names = [n["id"] for n in sorted(nodes, key=lambda n: (not n.get("constraint"), not n.get("hidden")))]
    names += sorted(k for k in history if isinstance(k, str) and k not in names)
    series = {name: _points(history.get(name)) for name in names}
    times = [t for pts in series.values() for t, _ in pts]
    window = (min(times), max(times)) if times else None
    target = _target_of(context)
    after = predicted_after or {}
    return [
        sparkline_svg(name, history.get(name), target=target, predicted=_number(after.get(name)), window=window)
        for name in names
    ]


def predicted_after(plan: Mapping[str, Any] | None) -> dict[str, float]:
    """Per node, the utilization the plan predicts after the fix (from `plan.predicted[node].utilization_after`)."""
    found: dict[str, float] = {}
    predicted = (plan or {}).get("predicted") or {}
    items: Iterable[tuple[Any, Any]] = predicted.items() if isinstance(predicted, Mapping) else ()
    for node, outcome in items:
        value = _number(outcome.get("utilization_after")) if isinstance(outcome, Mapping) else None
        if isinstance(node, str) and value is not None:
            found[node] = value
    return found
