"""Desires: the goals an agent pursues, from YAML configuration, validated."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

import yaml
from pydantic import Field, ValidationError, model_validator

from agents._frozen import Frozen
from twin.contract import Node
from twin.graph import DEFAULT_TARGET_UTILIZATION
from twinops import TwinopsError

Utilization = Annotated[float, Field(gt=0.0, le=1.0)]


class DesiresError(TwinopsError, ValueError):
    """A desires document that does not validate; the message names each bad field."""


class GoalKind(StrEnum):
    """The goals a plan is judged against."""

    NO_SATURATION = "no_saturation"
    TARGET_UTILIZATION = "target_utilization"
    LATENCY_SLO = "latency_slo"
    QUEUE_NOT_GROWING = "queue_not_growing"
    SERVE_ALL_DEMAND = "serve_all_demand"


DEFAULT_PRIORITIES: dict[GoalKind, int] = {
    GoalKind.NO_SATURATION: 1,
    GoalKind.SERVE_ALL_DEMAND: 2,
    GoalKind.TARGET_UTILIZATION: 3,
    GoalKind.LATENCY_SLO: 4,
    GoalKind.QUEUE_NOT_GROWING: 5,
}
"""Lower number = more important. Serving demand outranks headroom: shedding is a last resort."""

DEFAULT_REPLICA_HOUR_COST: dict[str, float] = {
    "service": 1.0,
    "queue": 1.0,
    "station": 1.0,
    "database": 4.0,
    "external": 0.0,
}


class NodeSelector(Frozen):
    """One node (`node`) or every node carrying a tag (`tag: "key=value"`): exactly one of them."""

    node: str | None = None
    tag: str | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.node is None) == (self.tag is None):
            raise ValueError("give exactly one of 'node' or 'tag'")
        if self.tag is not None and "=" not in self.tag:
            raise ValueError(f"tag {self.tag!r} must be 'key=value'")
        return self

    def matches(self, node: Node) -> bool:
        """Whether this entry applies to `node`."""
        if self.node is not None:
            return node.id == self.node
        key, _, value = (self.tag or "").partition("=")
        return node.tags.get(key) == value


class UtilizationTarget(NodeSelector):
    """A target utilization for one node or every node carrying a tag."""

    utilization: Utilization


class ReadinessDelay(NodeSelector):
    """How long a new replica of one node, or of every node carrying a tag, takes to serve."""

    seconds: Annotated[float, Field(ge=0.0)]


class Budget(Frozen):
    """Replica budget: a total over the twin and per team (by the team tag). None = unlimited."""

    total_replicas: Annotated[int, Field(ge=0)] | None = None
    per_team: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class Desires(Frozen):
    """Everything the agent wants, with defaults that match ARCHITECTURE.md."""

    target_utilization: Utilization = DEFAULT_TARGET_UTILIZATION
    targets: tuple[UtilizationTarget, ...] = ()
    scale_down_below: Utilization = 0.5
    """Hysteresis: scale down only when demand utilization is under this..."""
    scale_down_to: Utilization = 0.65
    """...and then to replicas that land near this, well inside the band, so noise cannot flip it back."""
    latency_slo_ms: dict[str, Annotated[float, Field(gt=0.0)]] = Field(default_factory=dict)
    queue_not_growing: bool = True
    budget: Budget = Field(default_factory=Budget)
    replica_hour_cost: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_REPLICA_HOUR_COST)
    )
    shed_cost_per_rps_hour: Annotated[float, Field(ge=0.0)] = 5.0
    """What an hour of one request per second refused costs, to rank shedding against scaling."""
    priorities: dict[GoalKind, Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    horizon_seconds: Annotated[float, Field(gt=0.0)] = 900.0
    """How far ahead trends are projected: predicted findings and plans look this far."""
    plan_margin_seconds: Annotated[float, Field(ge=0.0)] = 300.0
    """Plans are sized for the load projected this long past the horizon, so capacity for a
    predicted crossing is in place before its eta and holds for a while after."""
    cooldown_seconds: Annotated[float, Field(ge=0.0)] = 300.0
    readiness_seconds: Annotated[float, Field(ge=0.0)] = 120.0
    """How long a new replica takes to serve (scheduling, pull, start, readiness probe)..."""
    readiness: tuple[ReadinessDelay, ...] = ()
    """...per node or tag where it differs (the node's own entry wins, else the slowest matching tag)."""
    scale_down_hold_seconds: Annotated[float, Field(ge=0.0)] = 1800.0
    """With a forecast, a scale-down must carry the upper band for the readiness delay plus this long
    (at least the cool-down): no scale-down the forecast says may be undone within the safety
    policy's rate-limit window (30 min), no stepping down and back up around a bump."""
    forecast: bool = True
    """Plan from the demand forecast where a seasonal one exists (agents/forecast.py): scale up so
    capacity is ready before the upper band crosses the target, and down to what carries the
    upper band through readiness + cool-down. Off, or without a day of history: the trend and
    the hysteresis band above."""
    suppress_declined_seconds: Annotated[float, Field(ge=0.0)] = 3600.0
    """A plan a person rejected or cancelled is not proposed again for its node for this long..."""
    declined_worse_margin: Annotated[float, Field(gt=0.0)] = 0.10
    """...unless the node's demand utilization rose by this much since (0.10 = 10 points) or it saturated."""
    max_snapshot_age_seconds: Annotated[float, Field(gt=0.0)] = 120.0
    contradiction_tolerance: Annotated[float, Field(gt=0.0)] = 0.25
    team_tag: str = "team"

    @model_validator(mode="after")
    def _band(self) -> Desires:
        lowest = min([self.target_utilization, *(t.utilization for t in self.targets)])
        if not self.scale_down_below < self.scale_down_to < lowest:
            raise ValueError(
                f"need scale_down_below ({self.scale_down_below}) < scale_down_to ({self.scale_down_to}) "
                f"< every target utilization (lowest {lowest}) for hysteresis"
            )
        for goal in GoalKind:
            if goal not in self.priorities:
                raise ValueError(f"priorities: missing goal {goal.value!r}")
        return self

    def target_for(self, node: Node) -> float:
        """Target utilization of `node`: its own entry, else the strictest matching tag, else the default."""
        own = [t.utilization for t in self.targets if t.node is not None and t.matches(node)]
        if own:
            return own[-1]
        tagged = [t.utilization for t in self.targets if t.tag is not None and t.matches(node)]
        return min(tagged) if tagged else self.target_utilization

    def readiness_for(self, node: Node) -> float:
        """Readiness delay of `node`: its own entry, else the slowest matching tag, else the default."""
        own = [r.seconds for r in self.readiness if r.node is not None and r.matches(node)]
        if own:
            return own[-1]
        tagged = [r.seconds for r in self.readiness if r.tag is not None and r.matches(node)]
        return max(tagged) if tagged else self.readiness_seconds

    def replica_cost(self, node: Node) -> float:
        """Cost of one replica-hour of `node`, by its kind (unknown kinds cost 1)."""
        return self.replica_hour_cost.get(node.kind.value, 1.0)

    def ranked_goals(self) -> list[GoalKind]:
        """Goals from most to least important (ties broken by name for determinism)."""
        return sorted(GoalKind, key=lambda g: (self.priorities[g], g.value))


def parse_desires(raw: Mapping[str, Any] | None) -> Desires:
    """Validate a desires mapping; DesiresError names every bad field."""
    data = dict(raw or {})
    if "priorities" in data and isinstance(data["priorities"], Mapping):
        # Partial priority maps override the defaults rather than replace them.
        data["priorities"] = {**{g.value: p for g, p in DEFAULT_PRIORITIES.items()}, **data["priorities"]}
    if "replica_hour_cost" in data and isinstance(data["replica_hour_cost"], Mapping):
        data["replica_hour_cost"] = {**DEFAULT_REPLICA_HOUR_COST, **data["replica_hour_cost"]}
    try:
        return Desires.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "desires"
            problems.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
        raise DesiresError("invalid desires: " + "; ".join(problems)) from exc


def load_desires(text: str | None) -> Desires:
    """Parse desires from YAML text (None or empty = all defaults). Reading the file is the caller's job."""
    if not text or not text.strip():
        return Desires()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DesiresError(f"invalid desires: not YAML: {exc}") from exc
    if raw is not None and not isinstance(raw, Mapping):
        raise DesiresError("invalid desires: the document must be a mapping")
    return parse_desires(raw)
