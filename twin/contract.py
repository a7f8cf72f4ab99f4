"""The twin.v1 state contract: one snapshot of a running system as a service graph.

Every rule from ARCHITECTURE.md is enforced here, and each violation names the
offending node, edge or field so an operator can fix the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION: Literal["twin.v1"] = "twin.v1"

NonNegativeFloat = Annotated[float, Field(ge=0.0)]


class SnapshotError(ValueError):
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

    arrival_rate: NonNegativeFloat | None = None
    throughput: NonNegativeFloat | None = None
    utilization: NonNegativeFloat | None = None
    queue_depth: NonNegativeFloat | None = None
    latency_p95_ms: NonNegativeFloat | None = None
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


class Node(_Frozen):
    """One component of the estate, with its scaling bounds and observed metrics."""

    id: Annotated[str, Field(min_length=1)]
    kind: NodeKind = NodeKind.SERVICE
    replicas: Annotated[int, Field(ge=0)]
    capacity_per_replica: Annotated[float, Field(gt=0.0)]
    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=0)] = 1
    external_arrival_rate: NonNegativeFloat = 0.0
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
    ratio: NonNegativeFloat


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
    observed_at: AwareDatetime
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)

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
        if not problems:
            cycle = find_cycle([n.id for n in self.nodes], [(e.source, e.target) for e in self.edges])
            if cycle:
                problems.append("edges form a cycle: " + " -> ".join(cycle))
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


def parse_snapshot(raw: Mapping[str, Any] | str | bytes) -> Snapshot:
    """Validate a twin.v1 document (dict or JSON text); raise SnapshotError naming each problem."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SnapshotError([f"not JSON: {exc}"]) from exc
    if not isinstance(raw, Mapping):
        raise SnapshotError(["a snapshot must be a JSON object"])
    if raw.get("schema") != SCHEMA_VERSION:
        raise SnapshotError([f"schema: expected {SCHEMA_VERSION!r}, got {raw.get('schema')!r}"])
    try:
        return Snapshot.model_validate(raw)
    except ValidationError as exc:
        raise SnapshotError(_problems(exc, raw)) from exc


def snapshot_age_seconds(snapshot: Snapshot, now: datetime) -> float:
    """Seconds between the observation and `now` (negative if observed in the future)."""
    return (now - snapshot.observed_at).total_seconds()


SCHEMA_PATH_PARTS = ("schema", "twin.v1.json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a twin.v1 snapshot, as checked into twin/schema/twin.v1.json.

    Graph rules (unique ids, known edge ends, acyclic, min <= max) are beyond JSON Schema
    and are enforced by `parse_snapshot`.
    """
    schema = Snapshot.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://twinops.dev/schema/twin.v1.json"
    schema["title"] = "twin.v1 snapshot"
    return schema


def render_json_schema() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
