"""The playbook expression language: what it parses and refuses, how it evaluates, and that it cannot reach Python."""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import revise
from agents.playbook import (
    BELIEF_NAMES,
    MATH_FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    SIGNATURES,
    EvaluationError,
    ExpressionError,
    PlaybookError,
    Signature,
    belief_values,
    evaluate,
    load_playbook,
    node_functions,
    parse_condition,
    parse_duration,
    parse_expression,
)
from agents.sizing import replicas_for
from tests.agents.conftest import node, snap

NAMES = {"x": 2.0, "y": 3.0, "demand_utilization": 0.25}
FUNCS = {**SIGNATURES, "double": Signature((1, 1))}
IMPLS = {**MATH_FUNCTIONS, "double": lambda args, _kw: 2 * args[0]}


def num(text: str, names: Mapping[str, float] = NAMES) -> float | bool:
    return evaluate(parse_expression(text, "number", names, FUNCS), names, IMPLS)


def cond(text: str, names: Mapping[str, float] = NAMES) -> float | bool:
    return evaluate(parse_condition(text, names, FUNCS).expr, names, IMPLS)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 / 4 - 1", 1.5),
        ("8 - 2 - 1", 5.0),  # left-associative
        ("-x + +y", 1.0),
        ("--x", 2.0),
        ("2h", 7200.0),
        ("30m + 90s", 1890.0),
        ("1.5d", 129600.0),
        ("min(x, y, 1)", 1.0),
        ("max(x, y)", 3.0),
        ("ceil(2.1) + floor(2.9) + round(2.5) + round(2.4) + abs(-x)", 3 + 2 + 3 + 2 + 2),
        ("double(x) * y", 12.0),
    ],
)
def test_arithmetic(text: str, value: float) -> None:
    assert num(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x < y", True),
        ("x >= y", False),
        ("x == 2 and y != 2", True),
        ("x > 5 or not y > 5", True),
        ("not (x < y and y < 1)", True),
        ("demand_utilization < 0.3", True),
    ],
)
def test_conditions(text: str, value: bool) -> None:
    assert cond(text) is value


def test_and_or_short_circuit_past_a_missing_value() -> None:
    assert cond("x > 5 and missing > 1", {"x": 2.0, "missing": 0.0}) is False
    tree = parse_condition("x > 1 or missing > 1", {"x", "missing"}, FUNCS).expr
    assert evaluate(tree, {"x": 2.0}, IMPLS) is True
    with pytest.raises(EvaluationError, match="no value for 'missing'"):
        evaluate(tree, {"x": 0.0}, IMPLS)


def test_a_condition_may_say_how_long_it_must_hold() -> None:
    assert parse_condition("x < 0.3 for 2h", NAMES, FUNCS).hold_seconds == 7200.0
    assert parse_condition("x < 0.3", NAMES, FUNCS).hold_seconds == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("x +", "expected a number, a name or '\\(', found the end"),
        ("(x", "expected '\\)'"),
        ("x y", "expected an operator"),
        ("os", "unknown belief name 'os'"),
        ("__import__('os')", 'unexpected character "\'"'),
        ("x.real", "unexpected character '.'"),
        ("x[0]", "unexpected character '\\['"),
        ("lambda: 1", "unexpected character ':'"),
        ("eval(1)", "unknown function 'eval'"),
        ("optimal_replica(target=1)", "did you mean 'optimal_replicas'"),
        ("min", "'min' is a function: call it"),
        ("double(1, 2)", "double\\(\\) takes 1 positional argument, 2 given"),
        ("min(1)", "takes 2 to 16 positional arguments, 1 given"),
        ("optimal_replicas()", "needs keyword target"),
        ("optimal_replicas(target=1, goal=2)", "no keyword 'goal'"),
        ("optimal_replicas(target=1, target=2)", "keyword 'target' given twice"),
        ("max(y=1, 2)", "a positional argument after a keyword one"),
        ("1 < 2", "must be a number, not a condition"),
        ("x + (1 < 2)", "operand of '\\+' must be a number"),
        ("12abc", "bad number '12abc'"),
        ("1.", "digits must follow the point"),
        ("1" * 40, "too large"),
        ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
        ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), "nests too deeply"),
        ("-" * (MAX_DEPTH + 1) + "1", "nests too deeply"),
        (" + ".join(["1"] * (MAX_DEPTH + 1)), "nests too deeply"),
        ("x ** 2", "expected a number, a name or"),
        ("\u0663", "unexpected character"),  # a non-ASCII digit float() would read
    ],
)
def test_refused_numbers(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text, "number", NAMES, FUNCS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "must be a condition"),
        ("x < 1 < 2", "cannot be chained"),
        ("not x", "operand of 'not' must be a condition"),
        ("x < 1 and 2", "operand of 'and' must be a condition"),
        ("x < 1 for", "a duration after 'for'"),
        ("x < 1 for 2", "a duration after 'for'"),
        ("x < 1 for 0h", "more than 0"),
        ("x < 1 for 2h or y < 1", "the end of the condition"),
    ],
)
def test_refused_conditions(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_condition(text, NAMES, FUNCS)


def test_errors_say_where_in_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression("x + nope", "number", NAMES, FUNCS)
    assert caught.value.column == 5
    assert "at character 5 of the expression" in str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90.0), ("30m", 1800.0), (" 2h ", 7200.0), ("1d", 86400.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "2 h", "2hours", "h", "1h30m", "-1h", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("x / (y - 3)", "division by zero"), ("missing", "no value for 'missing'"), ("nothere(1)", "not available")],
)
def test_evaluation_errors(text: str, message: str) -> None:
    tree = parse_expression(text, "number", {*NAMES, "missing"}, {**FUNCS, "nothere": Signature((1, 1))})
    with pytest.raises(EvaluationError, match=message):
        evaluate(tree, NAMES, IMPLS)


def test_an_overflowing_result_is_an_evaluation_error() -> None:
    tree = parse_expression("x * x * x * x * x", "number", {"x"}, FUNCS)
    with pytest.raises(EvaluationError, match="not a finite number"):
        evaluate(tree, {"x": 1e300}, IMPLS)


def test_a_function_that_returns_no_number_is_an_evaluation_error() -> None:
    tree = parse_expression("double(1)", "number", NAMES, FUNCS)
    with pytest.raises(EvaluationError, match="gave str"):
        evaluate(tree, NAMES, {"double": lambda _a, _k: "1"})  # type: ignore[dict-item,return-value]


# --- beliefs ---------------------------------------------------------------------------------------------


def test_belief_values_cover_only_whitelisted_names_and_skip_missing_metrics() -> None:
    beliefs = revise(None, snap([node("api", 4, 100.0, ext=120.0, metrics={"queue_depth": 7.0})]))
    values = belief_values(beliefs.node("api"))
    assert values.keys() <= BELIEF_NAMES.keys()
    assert values["demand_utilization"] == pytest.approx(0.3)
    assert values["observed_queue_depth"] == 7.0
    assert "observed_latency_p95_ms" not in values and "forecast_peak_rps" not in values


def test_node_functions_size_with_the_planner_rule_and_need_a_forecast_for_long_horizons() -> None:
    belief = revise(None, snap([node("api", 8, 100.0, ext=120.0, lo=1, hi=20)])).node("api")
    values, functions = belief_values(belief), node_functions(belief)

    def run(text: str) -> float | bool:
        return evaluate(parse_expression(text, "number", BELIEF_NAMES, SIGNATURES), values, functions)

    assert run("optimal_replicas(target=0.6)") == replicas_for(120.0, 0.6, 100.0, 1, 20) == 2
    assert run("optimal_replicas(target=0.5, demand=1000)") == 20  # capped at max_replicas
    with pytest.raises(EvaluationError, match="target must be in"):
        run("optimal_replicas(target=1.5)")
    with pytest.raises(EvaluationError, match="no demand forecast for 'api'"):
        run("forecast_peak_rps(next=24h)")
    peaks = node_functions(belief, peak=lambda seconds: 300.0 if seconds == 86400 else 0.0)
    tree = parse_expression("forecast_peak_utilization(next=24h)", "number", BELIEF_NAMES, SIGNATURES)
    assert evaluate(tree, values, peaks) == pytest.approx(300.0 / 800.0)


# --- safety: the language cannot reach Python --------------------------------------------------------


class Escaped(BaseException):
    """Raised by the trapped builtins: deriving from BaseException, no `except Exception` can swallow it."""


@contextlib.contextmanager
def trapped() -> Iterator[list[str]]:
    """While inside, eval, exec, compile and a new import raise `Escaped` (and are recorded): our code never calls them.

    Only around our calls: pytest and hypothesis use compile themselves when they report.
    """
    hits: list[str] = []
    saved = {name: getattr(builtins, name) for name in ("eval", "exec", "compile", "__import__")}
    real_import = saved["__import__"]

    def guarded_import(name: str, *args: Any, **kwargs: Any) -> Any:
        # Modules already loaded are what running code re-imports; anything new is an escape.
        if name not in sys.modules:
            hits.append(f"import {name}")
            raise Escaped(f"import {name}")
        return real_import(name, *args, **kwargs)

    def trap(name: str) -> Any:
        def trapped_builtin(*_args: Any, **_kwargs: Any) -> Any:
            hits.append(name)
            raise Escaped(name)

        return trapped_builtin

    for name in ("eval", "exec", "compile"):
        setattr(builtins, name, trap(name))
    builtins.__import__ = guarded_import
    try:
        yield hits
    finally:
        for name, value in saved.items():
            setattr(builtins, name, value)
    assert hits == []


PYTHON_JUNK = [
    "__import__('os').system('touch /tmp/pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "[x for x in (1,)]",
    "x.__class__",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('1')",
    "getattr(x, 'real')",
    "x if x else y",
    "f'{x}'",
    "'a' + 'b'",
    "x := 1",
    "1e999",
    "9" * 400,
    "(" * 10_000,
    "-" * 10_000 + "1",
    "not " * 5_000 + "x < 1",
    "min(" * 300 + "1" + ")" * 300,
    "x" * 100_000,
    "\x00",
    "{{ x }}",
    "x < 1 for 1e9h",
]

_alphabet = st.sampled_from([*"0123456789.+-*/<>=!(),_ xydhms'\"[]{}:;@#$\\\n", "and", "or", "not", "for"])
_structured = st.lists(
    st.one_of(_alphabet, st.sampled_from([*sorted(BELIEF_NAMES), *sorted(SIGNATURES), "__import__", "os"])),
    max_size=60,
).map("".join)


def _outcome(text: str) -> None:
    """Parse (and, when it parses, evaluate) `text` as both kinds of expression: only our errors may come out."""
    with trapped():
        _parse_and_run(text)


def _parse_and_run(text: str) -> None:
    names = {n: 1.0 for n in BELIEF_NAMES}
    functions = {n: (lambda args, kw: 1.0) for n in SIGNATURES}
    for parse in (
        lambda t: parse_expression(t, "number", BELIEF_NAMES, SIGNATURES),
        lambda t: parse_condition(t, BELIEF_NAMES, SIGNATURES).expr,
    ):
        try:
            tree = parse(text)
        except ExpressionError:
            continue
        try:
            result = evaluate(tree, names, functions)
        except EvaluationError:
            continue
        assert isinstance(result, bool | float) and (isinstance(result, bool) or math.isfinite(result))


@pytest.mark.parametrize("text", PYTHON_JUNK)
def test_python_is_not_in_the_language(text: str) -> None:
    _outcome(text)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), _structured))
def test_arbitrary_text_is_parsed_or_refused_never_run(text: str) -> None:
    _outcome(text)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(max_size=120), _structured))
def test_arbitrary_text_in_a_playbook_loads_or_is_a_load_error(text: str) -> None:
    # Any text, as a precondition and as a step parameter; JSON quoting (valid YAML) keeps it one scalar.
    quoted = json.dumps(text)
    document = PLAYBOOK.replace("PRECONDITION", quoted).replace("PARAM", json.dumps("{{" + text + "}}"))
    try:
        with trapped():
            load_playbook(document, "playbooks/p.yaml")
    except PlaybookError as exc:
        assert exc.problems and all(p.file == "playbooks/p.yaml" for p in exc.problems)


PLAYBOOK = """\
name: p
description: property test
version: 1
owner: sre
target: {kinds: [service]}
triggers: [{type: finding, kinds: [at_risk]}]
preconditions: [PRECONDITION]
steps:
  - action: scale
    params: {replicas: PARAM}
    verify: {expect: demand_utilization < 0.8, within: 10m}
limits: {max_duration: 1h, max_nodes: 1}
"""


def test_the_trap_catches_what_it_guards() -> None:
    with pytest.raises(Escaped), trapped():
        builtins.eval("1")
    with pytest.raises(Escaped), trapped():
        __import__("a_module_nobody_loaded")
