"""The twin model file: the topology metrics cannot tell, and a PromQL template per twin.v1 metric.

    twin_id: shop
    range: 1m                       # what {{range}} stands for in every template
    queries:                        # defaults for every node (and `ratio` for every edge without its own)
      replicas: kube_deployment_status_replicas_available{deployment="{{node}}"}
      arrival_rate: sum(rate(http_requests_received_total{service="{{node}}"}[{{range}}]))
    nodes:
      - {id: gateway, kind: service, capacity_per_replica: 200, min_replicas: 2, max_replicas: 20,
         queries: {queue_depth: null}}          # per-node override; null: not measured here
    edges:
      - {source: gateway, target: catalog, ratio: 0.6}          # a fixed ratio, or
      - {source: gateway, target: checkout, query: "..."}       # a query that measures it

Node templates may use `{{node}}` and `{{range}}`; edge templates `{{source}}`, `{{target}}` and
`{{range}}`. Loading reuses the playbook loader's YAML reading, which keeps the line of every key,
so each refusal names the file, the line and the field (docs/twin-model.md has the whole format).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The playbook loader's YAML reader, which keeps the line of every key: one reader of that kind in the code base.
from agents.playbook.errors import Problem
from agents.playbook.yaml_source import Located, compose, error_message, error_path
from controller.core.errors import ConfigurationError
from twin.contract import MAX_CAPACITY_PER_REPLICA, MAX_RATIO, MAX_REPLICAS, NodeKind, find_cycle

__all__ = [
    "EDGE_PLACEHOLDERS",
    "NODE_METRICS",
    "NODE_PLACEHOLDERS",
    "EdgeModel",
    "NodeModel",
    "TwinModel",
    "load_twin_model",
    "parse_twin_model",
]

NODE_METRICS: Final = (
    "replicas",
    "external_arrival_rate",
    "arrival_rate",
    "throughput",
    "utilization",
    "queue_depth",
    "latency_p95_ms",
    "error_rate",
)
"""The twin.v1 values a node template measures: replicas, external load and the six metrics."""
NODE_PLACEHOLDERS: Final = frozenset({"node", "range"})
EDGE_PLACEHOLDERS: Final = frozenset({"source", "target", "range"})
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"

Template = Annotated[str, Field(min_length=1, max_length=4000)]


def _refusal(problems: list[Problem]) -> ConfigurationError:
    """The refusal of a model file: one line per problem, in the order of the file."""
    lines = [str(p) for p in sorted(problems, key=lambda p: p.line or 0)]
    return ConfigurationError("\n".join(lines) or "invalid twin model")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class NodeQueries(_Strict):
    """One template per node value; a key set to null turns a default off for that node."""

    replicas: Template | None = None
    external_arrival_rate: Template | None = None
    arrival_rate: Template | None = None
    throughput: Template | None = None
    utilization: Template | None = None
    queue_depth: Template | None = None
    latency_p95_ms: Template | None = None
    error_rate: Template | None = None


class DefaultQueries(NodeQueries):
    """The templates every node uses unless it overrides them, and `ratio`, the default edge query."""

    ratio: Template | None = None


class NodeModel(_Strict):
    """One node: what metrics cannot tell (kind, capacity, bounds, tags) and its template overrides."""

    id: Annotated[str, Field(min_length=1)]
    kind: NodeKind = NodeKind.SERVICE
    capacity_per_replica: Annotated[float, Field(gt=0.0, le=MAX_CAPACITY_PER_REPLICA)]
    min_replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    max_replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    tags: dict[str, str] = Field(default_factory=dict)
    queries: NodeQueries = Field(default_factory=NodeQueries)


class EdgeModel(_Strict):
    """An edge with a fixed `ratio`, or a `query` that measures it (else the default `queries.ratio`)."""

    source: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)]
    ratio: Annotated[float, Field(ge=0.0, le=MAX_RATIO)] | None = None
    query: Template | None = None


class TwinModel(_Strict):
    """A validated twin model: topology plus the PromQL that measures each node and edge."""

    twin_id: Annotated[str, Field(min_length=1)]
    range: Annotated[str, Field(pattern=_DURATION)] = "1m"
    """The PromQL duration `{{range}}` stands for (rate windows): `1m` in production, `5s` in tests."""
    queries: DefaultQueries = Field(default_factory=DefaultQueries)
    nodes: Annotated[list[NodeModel], Field(min_length=1)]
    edges: list[EdgeModel] = Field(default_factory=list)

    def node_queries(self, node: NodeModel) -> dict[str, str]:
        """The rendered PromQL of each value measured at `node` (a value without a template is not measured)."""
        out: dict[str, str] = {}
        for metric in NODE_METRICS:
            template = _chosen(node.queries, self.queries, metric)
            if template is not None:
                out[metric] = _render(template, node=node.id, range=self.range)
        return out

    def edge_query(self, edge: EdgeModel) -> str | None:
        """The rendered PromQL that measures `edge`'s ratio, or None for a fixed ratio."""
        if edge.ratio is not None:
            return None
        template = edge.query or self.queries.ratio
        return None if template is None else _render(template, source=edge.source, target=edge.target, range=self.range)


def _chosen(own: NodeQueries, defaults: NodeQueries, metric: str) -> str | None:
    if metric in own.model_fields_set:
        value: str | None = getattr(own, metric)
        return value
    default: str | None = getattr(defaults, metric)
    return default


def _render(template: str, **values: str) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _template_problems(template: str | None, allowed: frozenset[str]) -> str | None:
    if template is None:
        return None
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in allowed})
    if unknown:
        return f"unknown placeholder {{{{{unknown[0]}}}}} (this template may use {', '.join(sorted(allowed))})"
    if "{{" in _PLACEHOLDER.sub("", template) or "}}" in _PLACEHOLDER.sub("", template):
        return "a '{{' or '}}' that is not part of a {{placeholder}}"
    return None


def _cross_checks(model: TwinModel, located: Located) -> None:
    for metric in (*NODE_METRICS, "ratio"):
        allowed = EDGE_PLACEHOLDERS if metric == "ratio" else NODE_PLACEHOLDERS
        problem = _template_problems(getattr(model.queries, metric), allowed)
        if problem is not None:
            located.problem(("queries", metric), problem)
    ids: dict[str, int] = {}
    for i, node in enumerate(model.nodes):
        if node.id in ids:
            located.problem(("nodes", i, "id"), f"duplicate node id {node.id!r} (also nodes[{ids[node.id]}])")
        ids.setdefault(node.id, i)
        if node.min_replicas > node.max_replicas:
            located.problem(
                ("nodes", i, "max_replicas"), f"node {node.id!r}: max_replicas {node.max_replicas} < min_replicas"
            )
        for metric in node.queries.model_fields_set:
            problem = _template_problems(getattr(node.queries, metric), NODE_PLACEHOLDERS)
            if problem is not None:
                located.problem(("nodes", i, "queries", metric), problem)
        if _chosen(node.queries, model.queries, "replicas") is None:
            located.problem(
                ("nodes", i, "queries", "replicas"),
                f"node {node.id!r}: no replicas query (twin.v1 needs replicas; set queries.replicas or this node's)",
            )
    pairs: set[tuple[str, str]] = set()
    for i, edge in enumerate(model.edges):
        label = f"edge {edge.source!r}->{edge.target!r}"
        for end in ("source", "target"):
            if getattr(edge, end) not in ids:
                located.problem(("edges", i, end), f"{label}: unknown node {getattr(edge, end)!r}")
        if (edge.source, edge.target) in pairs:
            located.problem(("edges", i), f"{label}: duplicate edge")
        pairs.add((edge.source, edge.target))
        if edge.ratio is not None and edge.query is not None:
            located.problem(("edges", i, "query"), f"{label}: give a fixed ratio or a query, not both")
        elif edge.ratio is None and edge.query is None and model.queries.ratio is None:
            located.problem(("edges", i), f"{label}: no ratio (give ratio, query, or a default queries.ratio)")
        problem = _template_problems(edge.query, EDGE_PLACEHOLDERS)
        if problem is not None:
            located.problem(("edges", i, "query"), problem)
    if not located.problems:
        cycle = find_cycle(list(ids), [(e.source, e.target) for e in model.edges])
        if cycle:
            located.problem(("edges",), "edges form a cycle: " + " -> ".join(cycle))


def parse_twin_model(text: str, file: str) -> TwinModel:
    """Parse and validate a twin model's YAML; ConfigurationError naming file, line and field of every problem."""
    data, located = compose(text, file, "a twin model")
    if data is None:
        raise _refusal(located.problems)
    try:
        model = TwinModel.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path = error_path(error, data)
            message = error_message(error, path)
            if error["type"] == "extra_forbidden" and len(path) >= 2 and path[-2] == "queries":
                known = ", ".join(NODE_METRICS) + (", ratio" if len(path) == 2 else "")
                message = f"unknown metric {path[-1]!r} (known: {known})"
            located.problem(path, message)
        raise _refusal(located.problems) from exc
    _cross_checks(model, located)
    if located.problems:
        raise _refusal(located.problems)
    return model


def load_twin_model(path: Path) -> TwinModel:
    """Read and validate a twin model file; ConfigurationError naming file, line and field when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _refusal([Problem(str(path), None, "", f"cannot read the twin model: {reason}")]) from exc
    return parse_twin_model(text, str(path))
