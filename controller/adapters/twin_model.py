"""The twin model file: the topology metrics cannot tell, and a PromQL template per twin.v1 metric.

    twin_id: shop
    range: 1m                       # what {{range}} stands for in every template
    node_label: service             # the label naming the node in a batched template's answers
    queries:                        # defaults for every node (and `ratio` for every edge without its own)
      replicas: {promql: 'kube_deployment_status_replicas_available{deployment=~"{{nodes}}"}', by: deployment}
      arrival_rate: sum by (service) (rate(http_requests_received_total{service=~"{{nodes}}"}[{{range}}]))
      queue_depth: queue_depth{service="{{node}}"}          # per node: one query per node
      ratio: {promql: '...{service=~"{{sources}}"}...', by: [service, target]}
    nodes:
      - {id: gateway, kind: service, capacity_per_replica: 200, min_replicas: 2, max_replicas: 20,
         queries: {queue_depth: null}}          # per-node override; null: not measured here
    edges:
      - {source: gateway, target: catalog, ratio: 0.6}          # a fixed ratio, or
      - {source: gateway, target: checkout, query: "..."}       # a query that measures it

A query is a template (text) or a mapping `{promql, by}`. A per-node template uses `{{node}}` and
runs once per node; a **batched** one uses `{{nodes}}` (a regex alternation of the ids of every
node using that template, only as the whole value of a regex matcher, `service=~"{{nodes}}"`) and
runs once for all of them, its answer keyed by the label `by` (default `node_label`). Edge
templates likewise: `{{source}}`/`{{target}}` per edge, or `{{sources}}`/`{{targets}}` batched and
keyed by `by: [source label, target label]`. `plan()` turns a model into the queries of a
snapshot. Loading reuses the playbook loader's YAML reading, which keeps the line of every key,
so each refusal names the file, the line and the field (docs/twin-model.md has the whole format).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

# The playbook loader's YAML reader, which keeps the line of every key: one reader of that kind in the code base.
from agents.playbook.errors import Problem
from agents.playbook.yaml_source import Located, compose, error_message, error_path
from controller.core.errors import ConfigurationError
from twin.contract import MAX_CAPACITY_PER_REPLICA, MAX_RATIO, MAX_REPLICAS, NodeKind, QualityMetric, find_cycle

__all__ = [
    "EDGE_PLACEHOLDERS",
    "MAX_BATCH",
    "NODE_METRICS",
    "NODE_PLACEHOLDERS",
    "EdgeModel",
    "Measured",
    "NodeModel",
    "PlannedQuery",
    "Query",
    "RatioQuery",
    "TwinModel",
    "load_twin_model",
    "parse_twin_model",
    "promql_regex_alternation",
]

NODE_METRICS: Final = tuple(m for m in get_args(QualityMetric) if m != "ratio")
"""The twin.v1 values a node template measures: replicas, external load and the six metrics."""
NODE_PLACEHOLDERS: Final = frozenset({"node", "nodes", "range"})
EDGE_PLACEHOLDERS: Final = frozenset({"source", "target", "sources", "targets", "range"})
MAX_BATCH: Final = 500
"""Node (or edge source) ids in one batched query at most; more are split into several queries."""
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*=~\s*([\"'])\{\{\s*(nodes|sources|targets)\s*\}\}\2")
"""A batched placeholder as the whole value of a regex matcher: `service=~"{{nodes}}"`."""
_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_REGEX_META = re.compile(r"([\\.+*?()|\[\]{}^$])")

Template = Annotated[str, Field(min_length=1, max_length=4000)]
Label = Annotated[str, Field(pattern=_LABEL)]


def promql_regex_alternation(ids: Iterable[str], quote: str = '"') -> str:
    """`a|b\\.c`: each id escaped for a RE2 regex (Go's QuoteMeta), then for a PromQL `quote`d string."""
    escaped = (_REGEX_META.sub(r"\\\1", i) for i in ids)
    return "|".join(e.replace("\\", "\\\\").replace(quote, "\\" + quote) for e in escaped)


def _as_query(value: Any) -> Any:
    """A query as written: a template (text) stands for `{promql: template}`."""
    if isinstance(value, str):
        return {"promql": value}
    if value is None or isinstance(value, dict | BaseModel):
        return value
    raise ValueError("a query is a PromQL template (text) or a mapping {promql, by}")


def _refusal(problems: list[Problem]) -> ConfigurationError:
    """The refusal of a model file: one line per problem, in the order of the file."""
    lines = [str(p) for p in sorted(problems, key=lambda p: p.line or 0)]
    return ConfigurationError("\n".join(lines) or "invalid twin model")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Query(_Strict):
    """A node template, and for a batched one (`{{nodes}}`) the label naming the node in its answer."""

    promql: Template
    by: Label | None = None
    """The label whose value is the node id in each answered series (default: the model's `node_label`)."""

    def batched(self) -> bool:
        return "nodes" in _placeholders(self.promql)


class RatioQuery(_Strict):
    """An edge template, and for a batched one (`{{sources}}`, `{{targets}}`) the labels naming source and target."""

    promql: Template
    by: Annotated[list[Label], Field(min_length=2, max_length=2)] | None = None
    """[source label, target label]: the labels whose values are the edge's ends in each answered series."""

    def batched(self) -> bool:
        return bool({"sources", "targets"} & _placeholders(self.promql))


NodeQuery = Annotated[Query | None, BeforeValidator(_as_query)]
EdgeQuery = Annotated[RatioQuery | None, BeforeValidator(_as_query)]


class NodeQueries(_Strict):
    """One query per node value; a key set to null turns a default off for that node."""

    replicas: NodeQuery = None
    external_arrival_rate: NodeQuery = None
    arrival_rate: NodeQuery = None
    throughput: NodeQuery = None
    utilization: NodeQuery = None
    queue_depth: NodeQuery = None
    latency_p95_ms: NodeQuery = None
    error_rate: NodeQuery = None


class DefaultQueries(NodeQueries):
    """The queries every node uses unless it overrides them, and `ratio`, the default edge query."""

    ratio: EdgeQuery = None


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
    query: EdgeQuery = None


@dataclass(frozen=True)
class Measured:
    """What one answered series measures: a node's value, or an edge's ratio (its quality issues go to the target)."""

    node: str
    metric: str
    edge: tuple[str, str] | None = None

    def label(self) -> str:
        if self.edge is not None:
            return f"edge {self.edge[0]!r}->{self.edge[1]!r} ratio"
        return f"node {self.node!r} {self.metric}"


@dataclass(frozen=True, eq=False)
class PlannedQuery:
    """One PromQL query of a snapshot and what its answer measures.

    `by` are the labels keying the answer: () for a per-node (or per-edge) query, whose every series
    is that node's; ("service",) or ("service", "target") for a batched one. `targets` maps each key
    (the `by` labels' values) to what it measures; series with another key are not this query's.
    """

    metric: str
    promql: str
    template: str
    """The template as written ({{range}} rendered): what messages show of a batched query, not its long regex."""
    by: tuple[str, ...]
    targets: Mapping[tuple[str, ...], Measured] = field(default_factory=dict)

    def shown(self) -> str:
        if not self.by:
            return f"query {self.promql!r}"
        return f"batched query {self.template!r} by {', '.join(self.by)}, {len(self.targets)} at once"


class TwinModel(_Strict):
    """A validated twin model: topology plus the PromQL that measures each node and edge."""

    twin_id: Annotated[str, Field(min_length=1)]
    range: Annotated[str, Field(pattern=_DURATION)] = "1m"
    """The PromQL duration `{{range}}` stands for (rate windows): `1m` in production, `5s` in tests."""
    node_label: Label | None = None
    """The label naming the node in the answers of batched templates (`{{nodes}}`) without their own `by`."""
    queries: DefaultQueries = Field(default_factory=DefaultQueries)
    nodes: Annotated[list[NodeModel], Field(min_length=1)]
    edges: list[EdgeModel] = Field(default_factory=list)

    def node_queries(self, node: NodeModel) -> dict[str, str]:
        """The rendered PromQL of each value measured at `node` alone (a batched template with `{{nodes}}` = it)."""
        out: dict[str, str] = {}
        for metric in NODE_METRICS:
            query = _chosen(node.queries, self.queries, metric)
            if query is not None:
                out[metric] = _render(query.promql, self.range, node=[node.id])
        return out

    def edge_query(self, edge: EdgeModel) -> str | None:
        """The rendered PromQL that measures `edge`'s ratio alone, or None for a fixed ratio."""
        query = self._ratio_query(edge)
        if query is None:
            return None
        return _render(query.promql, self.range, source=[edge.source], target=[edge.target])

    def _ratio_query(self, edge: EdgeModel) -> RatioQuery | None:
        return None if edge.ratio is not None else (edge.query or self.queries.ratio)

    def plan(
        self,
        batch: int = MAX_BATCH,
        *,
        nodes: Collection[str] | None = None,
        metrics: Collection[str] | None = None,
    ) -> list[PlannedQuery]:
        """The queries that measure the model: one per node and value or edge for per-node templates, one per
        batched template and chunk of at most `batch` nodes (edge sources) otherwise.

        `nodes` (default all) keeps the values of those nodes and the ratios of the edges into them;
        `metrics` (default all, `ratio` for the edges) keeps those values.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        keep_node = (lambda _: True) if nodes is None else set(nodes).__contains__
        keep_metric = (lambda _: True) if metrics is None else set(metrics).__contains__
        out: list[PlannedQuery] = []
        groups: dict[tuple[str, str, str], list[str]] = {}
        for node in self.nodes:
            if not keep_node(node.id):
                continue
            for metric in NODE_METRICS:
                query = _chosen(node.queries, self.queries, metric)
                if query is None or not keep_metric(metric):
                    continue
                if not query.batched():
                    promql = _render(query.promql, self.range, node=[node.id])
                    out.append(PlannedQuery(metric, promql, promql, (), {(): Measured(node.id, metric)}))
                    continue
                label = query.by or self.node_label
                assert label is not None  # validated
                groups.setdefault((metric, query.promql, label), []).append(node.id)
        for (metric, template, label), ids in groups.items():
            for chunk in _chunks(ids, batch):
                out.append(
                    PlannedQuery(
                        metric,
                        _render(template, self.range, nodes=chunk),
                        _render(template, self.range, keep_batched=True),
                        (label,),
                        {(i,): Measured(i, metric) for i in chunk},
                    )
                )
        edge_groups: dict[tuple[str, tuple[str, str]], list[tuple[str, str]]] = {}
        for edge in self.edges:
            ratio = self._ratio_query(edge)
            if ratio is None or not keep_node(edge.target) or not keep_metric("ratio"):
                continue
            pair = (edge.source, edge.target)
            if not ratio.batched():
                promql = _render(ratio.promql, self.range, source=[edge.source], target=[edge.target])
                out.append(PlannedQuery("ratio", promql, promql, (), {(): Measured(edge.target, "ratio", pair)}))
                continue
            assert ratio.by is not None  # validated
            edge_groups.setdefault((ratio.promql, (ratio.by[0], ratio.by[1])), []).append(pair)
        for (template, by), pairs in edge_groups.items():
            # Chunked by source (or by target when only {{targets}} is used), so one end's list stays short.
            end = 0 if "sources" in _placeholders(template) else 1
            for ends in _chunks(list(dict.fromkeys(p[end] for p in pairs)), batch):
                chosen = set(ends)
                mine = [p for p in pairs if p[end] in chosen]
                out.append(
                    PlannedQuery(
                        "ratio",
                        _render(
                            template,
                            self.range,
                            sources=list(dict.fromkeys(s for s, _ in mine)),
                            targets=list(dict.fromkeys(t for _, t in mine)),
                        ),
                        _render(template, self.range, keep_batched=True),
                        by,
                        {p: Measured(p[1], "ratio", p) for p in mine},
                    )
                )
        return out


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _chosen(own: NodeQueries, defaults: NodeQueries, metric: str) -> Query | None:
    if metric in own.model_fields_set:
        value: Query | None = getattr(own, metric)
        return value
    default: Query | None = getattr(defaults, metric)
    return default


def _placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _render(template: str, range_: str, *, keep_batched: bool = False, **ids: list[str]) -> str:
    """`template` with `{{range}}` and the given ids: one id per singular placeholder, an alternation per plural."""

    def matcher(m: re.Match[str]) -> str:
        if keep_batched:
            return m.group(0)
        return f"{m.group(1)}=~{m.group(2)}{promql_regex_alternation(ids[m.group(3)], m.group(2))}{m.group(2)}"

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "range":
            return range_
        if keep_batched and name in ("nodes", "sources", "targets"):
            return m.group(0)
        if name in ("nodes", "sources", "targets"):  # only inside a matcher (validated); a lone one for node_queries
            return promql_regex_alternation(ids[name])
        return ids[name][0]

    singular = {"node": "nodes", "source": "sources", "target": "targets"}
    ids = {**ids, **{plural: ids[one] for one, plural in singular.items() if one in ids}}
    return _PLACEHOLDER.sub(value, _MATCHER.sub(matcher, template))


def _template_problems(template: str, allowed: frozenset[str]) -> str | None:
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in allowed})
    if unknown:
        return f"unknown placeholder {{{{{unknown[0]}}}}} (this template may use {', '.join(sorted(allowed))})"
    if "{{" in _PLACEHOLDER.sub("", template) or "}}" in _PLACEHOLDER.sub("", template):
        return "a '{{' or '}}' that is not part of a {{placeholder}}"
    used = set(names)
    for one, many in (("node", "nodes"), ("source", "sources"), ("target", "targets")):
        if one in used and many in used:
            return (
                f"uses both {{{{{one}}}}} and {{{{{many}}}}}: a template runs per node and edge ({{{{{one}}}}}) "
                f"or batched ({{{{{many}}}}}), not both"
            )
    if used & {"source", "target"} and used & {"sources", "targets"}:
        return "mixes per-edge ({{source}}, {{target}}) and batched ({{sources}}, {{targets}}) placeholders"
    plural = sum(names.count(p) for p in ("nodes", "sources", "targets"))
    if plural != len(_MATCHER.findall(template)):
        return (
            "a batched placeholder must be the whole quoted value of a regex matcher, "
            'e.g. service=~"{{nodes}}" (its ids are escaped for that)'
        )
    return None


def _matched(template: str, placeholder: str) -> list[str]:
    """The labels matched against `placeholder` in `template` (`service=~"{{nodes}}"`: service)."""
    return list(dict.fromkeys(label for label, _, name in _MATCHER.findall(template) if name == placeholder))


def _query_problems(
    query: Query | RatioQuery | None, where: tuple[str | int, ...], model: TwinModel, located: Located
) -> None:
    """Refuse what would make `query` unusable: placeholders, and for a batched one the labels keying it."""
    if query is None:
        return
    edge = isinstance(query, RatioQuery)
    problem = _template_problems(query.promql, EDGE_PLACEHOLDERS if edge else NODE_PLACEHOLDERS)
    if problem is not None:
        # Written as a mapping: the problem is its `promql`'s.
        located.problem((*where, "promql") if (*where, "promql") in located.lines else where, problem)
        return
    if not query.batched():
        if query.by is not None:
            plural = "{{sources}} or {{targets}}" if edge else "{{nodes}}"
            located.problem((*where, "by"), f"`by` is for a batched template ({plural}); this one is per node")
        return
    if isinstance(query, RatioQuery):
        if query.by is None:
            located.problem(where, "a batched ratio template needs `by: [source label, target label]`")
            return
        if query.by[0] == query.by[1]:
            located.problem((*where, "by"), f"source and target label are both {query.by[0]!r}")
        for label, placeholder in ((query.by[0], "sources"), (query.by[1], "targets")):
            matched = _matched(query.promql, placeholder)
            if matched and label not in matched:
                located.problem(
                    (*where, "by"),
                    f"label {label!r} is not matched against {{{{{placeholder}}}}} in this template "
                    f"(it matches {', '.join(matched)}): the answers could not be told apart by it",
                )
        return
    node_label = query.by or model.node_label
    if node_label is None:
        located.problem(
            where, "a batched template ({{nodes}}) needs the label naming the node: `by` here or a model `node_label`"
        )
        return
    matched = _matched(query.promql, "nodes")
    if node_label not in matched:
        source = "`by`" if query.by else "node_label"
        located.problem(
            (*where, "by") if query.by else where,
            f"label {node_label!r} ({source}) is not matched against {{{{nodes}}}} in this template "
            f"(it matches {', '.join(matched)}): the answers could not be told apart by it",
        )


def _cross_checks(model: TwinModel, located: Located) -> None:
    for metric in (*NODE_METRICS, "ratio"):
        _query_problems(getattr(model.queries, metric), ("queries", metric), model, located)
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
            _query_problems(getattr(node.queries, metric), ("nodes", i, "queries", metric), model, located)
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
        _query_problems(edge.query, ("edges", i, "query"), model, located)
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
