"""The twin.v1 state contract: one snapshot of a running system as a service graph.

Every rule from ARCHITECTURE.md is enforced here, and each violation names the
offending node, edge or field so an operator can fix the document. Beyond those rules,
numbers have sane maxima and edge ratios may not amplify traffic without bound, so that
everything computed from a valid snapshot later (demand through the graph, capacity,
trends, plans) stays finite. Any input, even binary or hostile, ends in a Snapshot or a
SnapshotError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from graphlib import TopologicalSorter
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from twinops import TwinopsError

SCHEMA_VERSION: Literal["twin.v1"] = "twin.v1"

# Sane maxima: far above any real estate, low enough that every product the flow
# semantics and the planner form later (replicas x capacity, demand through the graph,
# trends projected over the horizon) stays a finite float.
MAX_REPLICAS = 1_000_000
MAX_RATE = 1e12
"""Requests per second, and the ceiling of every observed metric except error_rate."""
MIN_CAPACITY_PER_REPLICA = 1e-6
MAX_CAPACITY_PER_REPLICA = 1e9
MAX_RATIO = 1e6
MAX_AMPLIFICATION = 1e12
"""Most rps that may reach a node per 1 rps entering at every node (ratios multiply along paths)."""


def _integral(value: Any) -> Any:
    # JSON Schema counts 12.0 as an integer; accept exactly that, nothing looser (no bools, no strings).
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_REPLICAS:
        return int(value)
    return value


def _no_timestamp_number(value: Any) -> Any:
    # Lax pydantic reads a number as Unix time; the schema says a date-time string.
    if isinstance(value, bool | int | float):
        raise ValueError("expected an ISO 8601 date-time string with a UTC offset, not a number")
    return value


# Strict: no "12" or true where a number belongs, so the validator and the published schema agree.
Number = Annotated[float, Strict(), Field(ge=0.0, le=MAX_RATE)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_REPLICAS), BeforeValidator(_integral)]
ObservedAt = Annotated[AwareDatetime, BeforeValidator(_no_timestamp_number)]


class SnapshotError(TwinopsError, ValueError):
    """A twin document that does not satisfy twin.v1; the message names what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid twin snapshot: " + "; ".join(problems))


class NodeKind(StrEnum):
    """What a node of the graph is."""

    SERVICE = "service"
    QUEUE = "queue"
    STATION = "station"
    DATABASE = "database"
    EXTERNAL = "external"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Metrics(_Frozen):
    """What was observed at a node. Any metric may be missing; missing is not zero."""

    arrival_rate: Number | None = None
    throughput: Number | None = None
    utilization: Number | None = None
    queue_depth: Number | None = None
    latency_p95_ms: Number | None = None
    error_rate: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] | None = None


class Node(_Frozen):
    """One component of the estate, with its scaling bounds and observed metrics."""

    id: Annotated[str, Field(min_length=1)]
    kind: NodeKind = NodeKind.SERVICE
    replicas: Count
    capacity_per_replica: Annotated[float, Strict(), Field(ge=MIN_CAPACITY_PER_REPLICA, le=MAX_CAPACITY_PER_REPLICA)]
    min_replicas: Count = 1
    max_replicas: Count = 1
    external_arrival_rate: Number | None = None
    """Load offered from outside the graph. None (absent or null): not reported, which is unknown,
    not zero. The flow semantics count it as 0; the agent holds a gap at a node that carried
    external load as unknown (see agents.beliefs)."""
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=Metrics)

    @model_validator(mode="after")
    def _bounds(self) -> Node:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"node {self.id!r}: max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self

    @property
    def capacity(self) -> float:
        """Completions per second the node sustains now: replicas x capacity_per_replica."""
        return self.replicas * self.capacity_per_replica

    @property
    def scalable(self) -> bool:
        """A node whose bounds coincide cannot be scaled."""
        return self.max_replicas > self.min_replicas


class Edge(_Frozen):
    """Requests sent to `target` per request completed at `source` (may exceed 1)."""

    source: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)]
    ratio: Annotated[float, Strict(), Field(ge=0.0, le=MAX_RATIO)]


QualityMetric = Literal[
    "replicas",
    "external_arrival_rate",
    "arrival_rate",
    "throughput",
    "utilization",
    "queue_depth",
    "latency_p95_ms",
    "error_rate",
    "ratio",
]
"""What a quality issue may be about: a node field, one of its metrics, or `ratio` (an edge into it)."""


class QualityIssue(_Frozen):
    """A value the source could not observe for a node; the field stays unset rather than guessed.

    `missing`: no series answered; `stale`: the newest sample is too old to count as now;
    `ambiguous`: several series answered where one was expected (they are not summed).
    An issue about an edge's `ratio` belongs to the edge's target, whose demand it feeds.
    """

    node: Annotated[str, Field(min_length=1)]
    metric: QualityMetric
    problem: Literal["missing", "stale", "ambiguous"]
    detail: Annotated[str, Field(min_length=1, max_length=2000)]


class Snapshot(_Frozen):
    """One observation of the whole twin at `observed_at`."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    schema_: Literal["twin.v1"] = Field(default=SCHEMA_VERSION, alias="schema")
    twin_id: Annotated[str, Field(min_length=1)]
    observed_at: ObservedAt
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    quality: list[QualityIssue] = Field(default_factory=list, exclude_if=lambda issues: not issues)
    """What the source could not observe (additive to twin.v1; left out of the JSON when empty)."""

    @model_validator(mode="after")
    def _graph(self) -> Snapshot:
        problems: list[str] = []
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                problems.append(f"node {node.id!r}: duplicate id")
            seen.add(node.id)
        pairs: set[tuple[str, str]] = set()
        for edge in self.edges:
            label = f"edge {edge.source!r}->{edge.target!r}"
            for end in (edge.source, edge.target):
                if end not in seen:
                    problems.append(f"{label}: unknown node {end!r}")
            if (edge.source, edge.target) in pairs:
                problems.append(f"{label}: duplicate edge")
            pairs.add((edge.source, edge.target))
        for issue in self.quality:
            if issue.node not in seen:
                problems.append(f"quality issue {issue.metric!r}: unknown node {issue.node!r}")
        if not problems:
            cycle = find_cycle([n.id for n in self.nodes], [(e.source, e.target) for e in self.edges])
            if cycle:
                problems.append("edges form a cycle: " + " -> ".join(cycle))
            else:
                problems.extend(_amplification_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def node(self, node_id: str) -> Node:
        """The node with this id; KeyError naming it if absent."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"twin {self.twin_id!r} has no node {node_id!r}")

    def to_json(self) -> str:
        """Canonical compact JSON of this snapshot (keys in model order)."""
        return self.model_dump_json(by_alias=True)


def _amplification_problems(snapshot: Snapshot) -> list[str]:
    """Name the first node whose traffic amplification (1 rps entering at every node) exceeds the maximum.

    Bounding it keeps demand, its trend and every plan computed from them finite, whatever
    the external load; a chain of 1,100 edges of ratio 2 fails here, not in the agent.
    """
    preds: dict[str, list[tuple[str, float]]] = {n.id: [] for n in snapshot.nodes}
    for e in snapshot.edges:
        preds[e.target].append((e.source, e.ratio))
    gain: dict[str, float] = {}
    for n in TopologicalSorter({n: [u for u, _ in p] for n, p in preds.items()}).static_order():
        g = 1.0 + math.fsum(r * gain[u] for u, r in preds[n])
        if not g <= MAX_AMPLIFICATION:
            return [
                f"node {n!r}: traffic amplification {g:.3g} through the edges exceeds {MAX_AMPLIFICATION:g} "
                "(edge ratios multiply along every path into it)"
            ]
        gain[n] = g
    return []


def find_cycle(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """Return one cycle as a node path (first node repeated at the end), or None."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        out.setdefault(s, []).append(t)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(out, white)
    for start in out:
        if colour[start] != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        colour[start] = grey
        while stack:
            node, i = stack[-1]
            if i < len(out[node]):
                stack[-1] = (node, i + 1)
                nxt = out[node][i]
                if colour.get(nxt, white) == grey:
                    return [*path[path.index(nxt) :], nxt]
                if colour.get(nxt, white) == white:
                    colour[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return None


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """Turn a pydantic location such as ('nodes', 2, 'replicas') into "node 'db': replicas"."""
    if len(loc) >= 2 and loc[0] == "quality" and isinstance(loc[1], int):
        items = raw.get("quality") if isinstance(raw, Mapping) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        name = f"quality[{loc[1]}]" + (f" (node {item.get('node')!r})" if isinstance(item, Mapping) else "")
        rest = ".".join(str(p) for p in loc[2:])
        return f"{name}: {rest}" if rest else name
    if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
        items = raw.get(loc[0]) if isinstance(raw, Mapping) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        rest = ".".join(str(p) for p in loc[2:])
        if loc[0] == "nodes":
            name = f"node {item.get('id')!r}" if isinstance(item, Mapping) and "id" in item else f"nodes[{loc[1]}]"
        else:
            name = (
                f"edge {item.get('source')!r}->{item.get('target')!r}"
                if isinstance(item, Mapping)
                else f"edges[{loc[1]}]"
            )
        return f"{name}: {rest}" if rest else name
    return ".".join(str(p) for p in loc) or "snapshot"


def _problems(exc: ValidationError, raw: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = _location(tuple(err["loc"]), raw)
        # Graph-level messages already name their node or edge; field errors get the location.
        named = where == "snapshot" or msg.startswith(("node ", "edge ", "edges "))
        problems.append(msg if named else f"{where}: {msg}")
    return problems


MAX_INT_DIGITS = 4000
"""Python refuses to convert longer integer literals (the limit is 4,300 digits); a longer one is
read as a stand-in just as far out of every bound, so the error names its field instead of the parser."""


_FAR_OUT: int = 10**MAX_INT_DIGITS


def _parse_int(text: str) -> int:
    if len(text) <= MAX_INT_DIGITS:
        return int(text)
    return -_FAR_OUT if text.startswith("-") else _FAR_OUT


def load_json(raw: str | bytes) -> Any:
    """JSON text (bytes must be UTF-8) to Python; SnapshotError for anything that is not."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise SnapshotError([f"not UTF-8 text: invalid byte at offset {exc.start}"]) from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise SnapshotError([f"not JSON: {exc}"]) from None
    except RecursionError:
        raise SnapshotError(["not JSON this service reads: nested too deeply"]) from None
    except ValueError as exc:
        raise SnapshotError([f"not JSON: {exc}"]) from None


def parse_snapshot(raw: Mapping[str, Any] | str | bytes) -> Snapshot:
    """Validate a twin.v1 document (dict, JSON text or UTF-8 bytes); raise SnapshotError naming each problem."""
    if isinstance(raw, str | bytes):
        raw = load_json(raw)
    if not isinstance(raw, Mapping):
        raise SnapshotError(["a snapshot must be a JSON object"])
    if raw.get("schema") != SCHEMA_VERSION:
        raise SnapshotError([f"schema: expected {SCHEMA_VERSION!r}, got {_short(raw.get('schema'))}"])
    try:
        return Snapshot.model_validate(raw)
    except ValidationError as exc:
        raise SnapshotError(_problems(exc, raw)) from None
    except RecursionError:
        raise SnapshotError(["snapshot: nested too deeply"]) from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def snapshot_age_seconds(snapshot: Snapshot, now: datetime) -> float:
    """Seconds between the observation and `now` (negative if observed in the future)."""
    return (now - snapshot.observed_at).total_seconds()


SCHEMA_PATH_PARTS = ("schema", "twin.v1.json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a twin.v1 snapshot, as checked into twin/schema/twin.v1.json.

    Graph rules (unique ids, known edge ends, acyclic, min <= max, traffic amplification at
    most MAX_AMPLIFICATION) are beyond JSON Schema and are enforced by `parse_snapshot`; field
    types and bounds are the same in both (strict: no numeric strings, no booleans as numbers).
    """
    schema = Snapshot.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://twinops.dev/schema/twin.v1.json"
    schema["title"] = "twin.v1 snapshot"
    return schema


def render_json_schema() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
