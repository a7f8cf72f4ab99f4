"""The playbook format: a frozen pydantic model, the source of `playbooks/schema.json`.

A playbook names what it acts on (`target`), when it runs (`triggers`), what must hold first
(`preconditions`), what it does (`steps`: twin actions whose parameters may be `{{ expressions }}`
over beliefs), how each step is approved, verified and undone, and its limits. Expressions are
parsed and checked when the model is built, so a bad name or call is a load-time error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from agents._frozen import Frozen
from agents.detection import FindingKind
from agents.playbook.cron import check_cron, check_time_zone
from agents.playbook.errors import ExpressionError
from agents.playbook.expr import Call, Expr, Name, parse_condition, parse_duration, parse_expression, walk
from agents.playbook.vocabulary import BELIEF_NAMES, HISTORY_NAMES, MATH_FUNCTIONS, SIGNATURES
from twin.contract import NodeKind

__all__ = [
    "Amount",
    "ApprovalMode",
    "Check",
    "Duration",
    "FindingTrigger",
    "Formula",
    "Limits",
    "Playbook",
    "RateLimitParams",
    "RateLimitStep",
    "Replicas",
    "RestartParams",
    "RestartStep",
    "Rps",
    "ScaleParams",
    "ScaleStep",
    "ScheduleTrigger",
    "ShiftTrafficParams",
    "ShiftTrafficStep",
    "Step",
    "Target",
    "Trigger",
    "Verification",
    "Weight",
    "json_schema",
    "render_json_schema",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_DURATION_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?[smhd]\s*$"
_TEMPLATE_PATTERN = r"^\s*\{\{[\s\S]*\}\}\s*$"


def _duration(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text such as 30m or 2h, not true/false")
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": _DURATION_PATTERN}, {"type": "number", "exclusiveMinimum": 0}],
            "description": "seconds, or a number and a unit: 90s, 30m, 2h, 1d",
        }
    ),
]
"""A length of time in seconds, written `90s`, `30m`, `2h`, `1d` (or a number of seconds)."""

Cron = Annotated[str, AfterValidator(check_cron)]
TimeZone = Annotated[str, AfterValidator(check_time_zone)]
NodeId = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True)
class Formula:
    """A number computed at run time from beliefs: the text between `{{` and `}}`, parsed."""

    source: str
    expr: Expr


@dataclass(frozen=True)
class Check:
    """A condition over beliefs (`demand_utilization < 0.3 for 2h`), parsed: its tree and how long it must hold."""

    source: str
    expr: Expr
    hold_seconds: float = 0.0

    @classmethod
    def parse(cls, value: object) -> Check:
        """Parse a condition; `ExpressionError` (a ValueError) names what is wrong."""
        if not isinstance(value, str):
            raise ValueError(f"a condition is text such as 'demand_utilization < 0.3', not {type(value).__name__}")
        condition = parse_condition(value, BELIEF_NAMES, SIGNATURES)
        if condition.hold_seconds > 0:
            _check_held(condition.expr)
        return cls(value, condition.expr, condition.hold_seconds)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(lambda c: c.source)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "type": "string",
            "minLength": 1,
            "description": "a condition over beliefs, optionally held: 'demand_utilization < 0.3 for 2h'",
        }


def _check_held(expr: Expr) -> None:
    """A held condition is evaluated on past buckets of the demand history: only what it records may be named."""
    for node in walk(expr):
        if isinstance(node, Name) and node.name not in HISTORY_NAMES:
            raise ExpressionError(
                f"{node.name!r} is not in the demand history, so 'for' cannot check it held "
                f"(a held condition may use {', '.join(HISTORY_NAMES)})",
                node.column,
            )
        if isinstance(node, Call) and node.function not in MATH_FUNCTIONS:
            raise ExpressionError(
                f"{node.function}() cannot be computed for past buckets, so 'for' cannot check it held "
                f"(a held condition may call {', '.join(MATH_FUNCTIONS)})",
                node.column,
            )


class Amount:
    """A step parameter: a number, or `{{ expression }}` computed from beliefs when the step runs.

    Subclasses say what kind of number (`integer`, `minimum`); a literal is checked at load time,
    a computed one when it is computed.
    """

    integer: ClassVar[bool] = False
    minimum: ClassVar[float] = 0.0
    description: ClassVar[str] = "a number"

    def __init__(self, literal: float | None = None, formula: Formula | None = None) -> None:
        assert (literal is None) != (formula is None)
        self.literal = literal
        self.formula = formula

    @property
    def source(self) -> float | str:
        """What the playbook says: the number, or the `{{ ... }}` text."""
        if self.formula is not None:
            return "{{ " + self.formula.source.strip() + " }}"
        assert self.literal is not None
        return int(self.literal) if self.integer else self.literal

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.source == self.source

    def __hash__(self) -> int:
        return hash((type(self), self.source))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"

    @classmethod
    def parse(cls, value: object) -> Amount:
        """A literal (checked now) or a `{{ ... }}` expression (parsed and checked now)."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected {cls.description} or '{{{{ expression }}}}', not {type(value).__name__}")
        if isinstance(value, str):
            text = value.strip()
            if not (text.startswith("{{") and text.endswith("}}")):
                raise ValueError(f"expected {cls.description} or '{{{{ expression }}}}', not {value!r}")
            inner = text[2:-2]
            return cls(formula=Formula(inner, parse_expression(inner, "number", BELIEF_NAMES, SIGNATURES)))
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected {cls.description}, not {value}")
        if cls.integer and value != int(value):
            raise ValueError(f"expected {cls.description}, not {value}")
        if value < cls.minimum:
            raise ValueError(f"expected {cls.description}; {value} is less than {cls.minimum:g}")
        return cls(literal=float(value))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(lambda a: a.source)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        number = {"type": "integer" if cls.integer else "number", "minimum": cls.minimum}
        template = {"type": "string", "pattern": _TEMPLATE_PATTERN}
        return {"anyOf": [number, template], "description": f"{cls.description}, or '{{{{ expression }}}}'"}


class Replicas(Amount):
    """A replica count (a whole number, 0 or more)."""

    integer = True
    description = "a whole number of replicas"


class Rps(Amount):
    """A rate in requests per second (0 or more)."""

    description = "requests per second"


class Weight(Amount):
    """A traffic ratio (0 or more)."""

    description = "a ratio"


ApprovalMode = Literal["policy", "always"]


class _Model(Frozen):
    # Field docstrings become descriptions in playbooks/schema.json.
    model_config = ConfigDict(use_attribute_docstrings=True)


class Target(_Model):
    """Which nodes a playbook acts on: those matching every criterion given (ids, kinds, tags)."""

    nodes: tuple[NodeId, ...] = ()
    """Node ids; empty = any id."""
    kinds: tuple[NodeKind, ...] = ()
    """Node kinds; empty = any kind."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags every selected node carries with these values."""

    @model_validator(mode="after")
    def _some_criterion(self) -> Target:
        # Fails closed: a playbook never targets every node by omission.
        if not (self.nodes or self.kinds or self.tags):
            raise ValueError("name at least one of nodes, kinds, tags (a playbook never targets everything by default)")
        return self

    def selects(self, node: str, kind: NodeKind, tags: Mapping[str, str]) -> bool:
        """Whether a node with this id, kind and tags is a target."""
        return (
            (not self.nodes or node in self.nodes)
            and (not self.kinds or kind in self.kinds)
            and all(tags.get(k) == v for k, v in self.tags.items())
        )


class ScheduleTrigger(_Model):
    """Run on a schedule: a five-field cron expression in an IANA time zone."""

    type: Literal["schedule"]
    cron: Cron
    timezone: TimeZone


class FindingTrigger(_Model):
    """Run when detection reports one of these kinds of finding on a target node."""

    type: Literal["finding"]
    kinds: tuple[FindingKind, ...] = Field(min_length=1)


Trigger = Annotated[ScheduleTrigger | FindingTrigger, Field(discriminator="type")]


class Verification(_Model):
    """How a step is verified: `expect` must hold on the target within `within` of the step."""

    expect: Check
    within: Duration


class _Step(_Model):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    """A name for the step in reports and the audit trail; default: its position."""
    approval: ApprovalMode = "policy"
    """`policy`: auto-approved only where the safety policy allows it; `always`: a human approves."""
    verify: Verification


class ScaleParams(_Model):
    """Set each target's replica count."""

    replicas: Replicas


class ScaleStep(_Step):
    """Scale each target node; undone by scaling back."""

    action: Literal["scale"]
    params: ScaleParams
    compensation: Literal["inverse", "none"] = "inverse"


class RateLimitParams(_Model):
    """Cap what each target admits; null removes the cap."""

    max_rps: Rps | None


class RateLimitStep(_Step):
    """Rate-limit each target node; undone by restoring its previous limit."""

    action: Literal["rate_limit"]
    params: RateLimitParams
    compensation: Literal["inverse", "none"] = "inverse"


class ShiftTrafficParams(_Model):
    """Set the ratios of some of each target's out-edges (targets not named keep theirs)."""

    ratios: dict[NodeId, Weight] = Field(min_length=1)


class ShiftTrafficStep(_Step):
    """Shift traffic from each target node; undone by restoring the ratios."""

    action: Literal["shift_traffic"]
    params: ShiftTrafficParams
    compensation: Literal["inverse", "none"] = "inverse"


class RestartParams(_Model):
    """A restart takes no parameters."""


class RestartStep(_Step):
    """Restart each target node. Not compensable: queued work is lost."""

    action: Literal["restart"]
    params: RestartParams = RestartParams()
    compensation: Literal["none"] = "none"


Step = Annotated[ScaleStep | RateLimitStep | ShiftTrafficStep | RestartStep, Field(discriminator="action")]


class Limits(_Model):
    """Bounds on one run: how long it may take and how many nodes it may change."""

    max_duration: Duration
    max_nodes: Annotated[int, Field(ge=1)]


class Playbook(_Model):
    """A declarative remediation: what it targets, when it runs, what must hold, what it does, within what limits."""

    model_config = ConfigDict(title="twinops playbook")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    """Lower-case words joined by '-'; the file is `playbooks/<name>.yaml`."""
    description: Annotated[str, Field(min_length=1)]
    version: Annotated[int, Field(ge=1)]
    """The playbook's own version: raise it with every change."""
    owner: Annotated[str, Field(min_length=1)]
    """The team that owns the playbook."""
    target: Target
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    preconditions: tuple[Check, ...] = ()
    """Conditions over each target's beliefs, all of which must hold before a step runs on it."""
    steps: tuple[Step, ...] = Field(min_length=1)
    limits: Limits


def json_schema() -> dict[str, Any]:
    """The playbook format as JSON Schema (draft 2020-12)."""
    schema = Playbook.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_json_schema() -> str:
    """The exact text of `playbooks/schema.json`."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
