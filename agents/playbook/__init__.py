"""Playbooks: the declarative format (`Playbook`), its safe expression language, and loading with precise errors.

The schema is owned here and exported to `playbooks/schema.json`; the controller finds the
files and loads them with `load_playbook`. Nothing here reads files or evaluates Python.
"""

from agents.playbook.errors import EvaluationError, ExpressionError, PlaybookError, Problem
from agents.playbook.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    Condition,
    Expr,
    Function,
    Signature,
    evaluate,
    parse_condition,
    parse_duration,
    parse_expression,
)
from agents.playbook.load import field_path, load_playbook
from agents.playbook.model import (
    Amount,
    Check,
    FindingTrigger,
    Formula,
    Limits,
    Playbook,
    RateLimitStep,
    RestartStep,
    ScaleStep,
    ScheduleTrigger,
    ShiftTrafficStep,
    Step,
    Target,
    Trigger,
    Verification,
    json_schema,
    render_json_schema,
)
from agents.playbook.vocabulary import (
    BELIEF_NAMES,
    MATH_FUNCTIONS,
    SIGNATURES,
    PeakForecast,
    belief_values,
    node_functions,
)

__all__ = [
    "BELIEF_NAMES",
    "MATH_FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "SIGNATURES",
    "Amount",
    "Check",
    "Condition",
    "EvaluationError",
    "Expr",
    "ExpressionError",
    "FindingTrigger",
    "Formula",
    "Function",
    "Limits",
    "PeakForecast",
    "Playbook",
    "PlaybookError",
    "Problem",
    "RateLimitStep",
    "RestartStep",
    "ScaleStep",
    "ScheduleTrigger",
    "ShiftTrafficStep",
    "Signature",
    "Step",
    "Target",
    "Trigger",
    "Verification",
    "belief_values",
    "evaluate",
    "field_path",
    "json_schema",
    "load_playbook",
    "node_functions",
    "parse_condition",
    "parse_duration",
    "parse_expression",
    "render_json_schema",
]
