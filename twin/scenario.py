"""Simulator scenarios: a service graph, load over time per entry node, and faults.

A scenario is a YAML document:

```yaml
twin_id: shop
start: 2026-11-21T08:00:00Z      # aware datetime; the simulator's t = 0
seed: 7                          # seeds measurement noise
noise: 0.02                      # relative measurement noise (std dev), default 0
duration: 3600                   # suggested run length in seconds (optional)
readiness_seconds: 120           # a replica added by a scale-up serves this long after it (default 0)
nodes:                           # twin.v1 node fields, minus metrics
  - {id: gateway, replicas: 4, capacity_per_replica: 250, min_replicas: 2, max_replicas: 20}
edges:
  - {source: gateway, target: checkout, ratio: 0.4}
load:                            # per entry node; a list is summed
  gateway:
    - {kind: constant, rate: 600}
    - {kind: diurnal, base: 0, amplitude: 300, period: 86400, phase: 28800}
    - {kind: spike, at: 1800, duration: 120, extra: 400}
faults:
  - {kind: replicas_lost, node: checkout, at: 600, replicas: 2}
  - {kind: capacity_factor, node: search, at: 900, factor: 0.5, duration: 600}
  - {kind: bad_release, node: recommendations, at: 300, error_rate: 0.2, extra_latency_ms: 400}
```

All times (`at`, `start` of a ramp, `duration`, `period`, `phase`) are seconds since the
scenario's `start`. A node's `external_arrival_rate` is a constant base load added to its
profiles. `max_replicas` defaults to `max(replicas, min_replicas)` (a node that cannot
scale unless the scenario says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from twin.contract import Edge, NodeKind, find_cycle
from twinops import TwinopsError

__all__ = [
    "BadRelease",
    "CapacityFactor",
    "ConstantLoad",
    "DiurnalLoad",
    "Fault",
    "LoadProfile",
    "RampLoad",
    "ReplicasLost",
    "Scenario",
    "ScenarioError",
    "ScenarioNode",
    "SpikeLoad",
    "StepLoad",
    "load_scenario",
    "parse_scenario",
]

NonNegative = Annotated[float, Field(ge=0.0)]
Seconds = Annotated[float, Field(ge=0.0)]


class ScenarioError(TwinopsError, ValueError):
    """A scenario that cannot be simulated; the message names each offending field."""

    def __init__(self, problems: list[str], source: str = "scenario") -> None:
        self.problems = problems
        super().__init__(f"invalid {source}: " + "; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)


# ---- load profiles --------------------------------------------------------------------------


class ConstantLoad(_Model):
    """`rate` requests per second, always."""

    kind: Literal["constant"] = "constant"
    rate: NonNegative

    def rate_at(self, t: float) -> float:
        """Requests per second offered at `t` seconds."""
        return self.rate


class RampLoad(_Model):
    """Linear from `from` to `to` between `start` and `start + duration`; flat outside."""

    kind: Literal["ramp"] = "ramp"
    from_: NonNegative = Field(alias="from")
    to: NonNegative
    start: Seconds = 0.0
    duration: Annotated[float, Field(gt=0.0)]

    def rate_at(self, t: float) -> float:
        """Requests per second offered at `t` seconds."""
        if t <= self.start:
            return self.from_
        if t >= self.start + self.duration:
            return self.to
        return self.from_ + (self.to - self.from_) * (t - self.start) / self.duration


class StepLoad(_Model):
    """`from` (default 0) before `at`, `to` from `at` on."""

    kind: Literal["step"] = "step"
    at: Seconds
    from_: NonNegative = Field(default=0.0, alias="from")
    to: NonNegative

    def rate_at(self, t: float) -> float:
        """Requests per second offered at `t` seconds."""
        return self.to if t >= self.at else self.from_


class DiurnalLoad(_Model):
    """`base + amplitude * sin(2π (t - phase) / period)`; the sum of all profiles is floored at 0.

    With phase = P the load crosses `base` rising at t = P and peaks at t = P + period / 4.
    """

    kind: Literal["diurnal"] = "diurnal"
    base: NonNegative
    amplitude: NonNegative
    period: Annotated[float, Field(gt=0.0)] = 86400.0
    phase: float = 0.0

    def rate_at(self, t: float) -> float:
        """Requests per second offered at `t` seconds (may be negative; the node's total is floored)."""
        return self.base + self.amplitude * math.sin(2 * math.pi * (t - self.phase) / self.period)


class SpikeLoad(_Model):
    """`extra` requests per second during `[at, at + duration)`."""

    kind: Literal["spike"] = "spike"
    at: Seconds
    duration: Annotated[float, Field(gt=0.0)]
    extra: NonNegative

    def rate_at(self, t: float) -> float:
        """Requests per second offered at `t` seconds."""
        return self.extra if self.at <= t < self.at + self.duration else 0.0


LoadProfile = Annotated[
    ConstantLoad | RampLoad | StepLoad | DiurnalLoad | SpikeLoad,
    Field(discriminator="kind"),
]


# ---- faults ---------------------------------------------------------------------------------


class ReplicasLost(_Model):
    """At `at`, `node` loses `replicas` replicas (never below 0). They stay lost until scaled back."""

    kind: Literal["replicas_lost"] = "replicas_lost"
    node: str
    at: Seconds
    replicas: Annotated[int, Field(ge=1)]


class CapacityFactor(_Model):
    """From `at` for `duration` seconds (None: for good), each replica of `node` runs at `factor` x mu."""

    kind: Literal["capacity_factor"] = "capacity_factor"
    node: str
    at: Seconds
    factor: Annotated[float, Field(gt=0.0)]
    duration: Annotated[float, Field(gt=0.0)] | None = None


class BadRelease(_Model):
    """A broken deploy: from `at` (for `duration`, None: for good) `node` fails `error_rate` of requests
    and adds `extra_latency_ms` to its p95. Independent of load, so scaling does not fix it."""

    kind: Literal["bad_release"] = "bad_release"
    node: str
    at: Seconds
    error_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    extra_latency_ms: NonNegative = 0.0
    duration: Annotated[float, Field(gt=0.0)] | None = None


Fault = Annotated[ReplicasLost | CapacityFactor | BadRelease, Field(discriminator="kind")]


# ---- the scenario ---------------------------------------------------------------------------


class ScenarioNode(_Model):
    """A twin.v1 node without metrics."""

    id: Annotated[str, Field(min_length=1)]
    kind: NodeKind = NodeKind.SERVICE
    replicas: Annotated[int, Field(ge=0)]
    capacity_per_replica: Annotated[float, Field(gt=0.0)]
    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=0)]
    external_arrival_rate: NonNegative = 0.0
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_max(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("max_replicas") is None:
            replicas, low = value.get("replicas"), value.get("min_replicas", 1)
            if isinstance(replicas, int) and isinstance(low, int):
                return {**value, "max_replicas": max(replicas, low)}
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ScenarioNode:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self


class Scenario(_Model):
    """A simulated estate: graph, load profiles, faults, and the seed and noise of its measurements."""

    twin_id: Annotated[str, Field(min_length=1)]
    start: AwareDatetime
    seed: int = 0
    noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    duration: Annotated[float, Field(gt=0.0)] | None = None
    readiness_seconds: Seconds = 0.0
    """Seconds a replica added by a scale-up takes to serve (twin/simulator.py); 0: at once."""
    description: str = ""
    nodes: Annotated[list[ScenarioNode], Field(min_length=1)]
    edges: list[Edge] = Field(default_factory=list)
    load: dict[str, list[LoadProfile]] = Field(default_factory=dict)
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("load", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        # One profile per node is the common case; let it be written without a list.
        if isinstance(value, Mapping):
            return {k: [v] if isinstance(v, Mapping) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _graph(self) -> Scenario:
        problems: list[str] = []
        ids: set[str] = set()
        for i, node in enumerate(self.nodes):
            if node.id in ids:
                problems.append(f"nodes[{i}] ({node.id!r}).id: duplicate id")
            ids.add(node.id)
        pairs: set[tuple[str, str]] = set()
        for i, edge in enumerate(self.edges):
            for field, end in (("source", edge.source), ("target", edge.target)):
                if end not in ids:
                    problems.append(f"edges[{i}].{field}: unknown node {end!r}")
            if (edge.source, edge.target) in pairs:
                problems.append(f"edges[{i}]: duplicate edge {edge.source!r}->{edge.target!r}")
            pairs.add((edge.source, edge.target))
        for name in self.load:
            if name not in ids:
                problems.append(f"load.{name}: unknown node {name!r}")
        for i, fault in enumerate(self.faults):
            if fault.node not in ids:
                problems.append(f"faults[{i}].node: unknown node {fault.node!r}")
        if not problems:
            cycle = find_cycle([n.id for n in self.nodes], [(e.source, e.target) for e in self.edges])
            if cycle:
                problems.append("edges: form a cycle " + " -> ".join(cycle))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def node(self, node_id: str) -> ScenarioNode:
        """The node with this id; KeyError naming it if absent."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"scenario {self.twin_id!r} has no node {node_id!r}")


def _where(loc: tuple[int | str, ...], raw: Any) -> str:
    """A readable field path: ('nodes', 1, 'replicas') -> "nodes[1] ('checkout').replicas"."""
    out = ""
    cursor: Any = raw
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if isinstance(cursor, Mapping) and part == 0:
                item: Any = cursor  # a lone profile, listified during validation
            else:
                item = cursor[part] if isinstance(cursor, list) and part < len(cursor) else None
            if i == 1 and loc[0] == "nodes" and isinstance(item, Mapping) and "id" in item:
                out += f" ({item['id']!r})"
            cursor = item
        else:
            # A discriminated union puts the tag in the location; the tag is already in the document.
            if isinstance(cursor, Mapping) and cursor.get("kind") == part and part not in cursor:
                continue
            out += f".{part}" if out else str(part)
            cursor = cursor.get(part) if isinstance(cursor, Mapping) else None
    return out or "scenario"


def parse_scenario(raw: Mapping[str, Any] | str, source: str = "scenario") -> Scenario:
    """Validate a scenario given as a mapping or YAML text; ScenarioError names every problem."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ScenarioError([f"not YAML: {exc}"], source) from exc
    if not isinstance(raw, Mapping):
        raise ScenarioError(["a scenario must be a YAML mapping"], source)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _where(tuple(err["loc"]), raw)
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(msg if where == "scenario" else f"{where}: {msg}")
        raise ScenarioError(problems, source) from exc


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([exc.strerror or str(exc)], str(path)) from exc
    return parse_scenario(text, source=str(path))
