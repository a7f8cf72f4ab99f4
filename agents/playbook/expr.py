"""The playbook expression language: a small, safe calculator over beliefs. Never Python's `eval`.

    demand_utilization < 0.3 and forecast_peak_utilization(next=24h) < 0.6
    optimal_replicas(target=0.6, demand=forecast_peak_rps(next=24h))

Numbers (`0.6`, and durations as seconds: `90s`, `30m`, `2h`, `1d`), names, `+ - * /`,
comparisons `< <= > >= == !=` (not chained), `and or not`, parentheses, and calls of
whitelisted functions with positional and keyword arguments. There are no strings,
attributes, indexing, lambdas or assignments: the tokenizer accepts only ASCII letters,
digits, `_`, `.`, whitespace and the operators above, so nothing else can be written.

Parsing checks everything that can be known before a run: every name against the
names allowed, every call against its `Signature` (arity, keyword names), and types
(a number where a number is needed, a yes/no where a condition is). An expression is at
most `MAX_LENGTH` characters and its tree at most `MAX_DEPTH` deep. `evaluate` runs the tree
over numbers and functions the caller supplies.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from agents.playbook.errors import EvaluationError, ExpressionError

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Binary",
    "Call",
    "Compare",
    "Condition",
    "Expr",
    "Function",
    "Logic",
    "Name",
    "Not",
    "Number",
    "Signature",
    "Type",
    "Unary",
    "depth",
    "evaluate",
    "parse_condition",
    "parse_duration",
    "parse_expression",
    "walk",
]

MAX_LENGTH = 500
"""Longest expression accepted, in characters."""
MAX_DEPTH = 32
"""Deepest expression tree accepted (a leaf is depth 1)."""
MAX_NUMBER = 1e15
"""Largest number literal accepted; larger ones are mistakes, not quantities."""

DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_START | _DIGITS
_SPACE = frozenset(" \t\r\n")
_OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", ",", "=")
_KEYWORDS = frozenset({"and", "or", "not", "for"})

Type = Literal["number", "bool"]
Function = Callable[[tuple[float, ...], Mapping[str, float]], float]
"""A function's implementation: positional arguments, keyword arguments -> a number."""


@dataclass(frozen=True)
class Signature:
    """What a function accepts: `positional` arguments (min, max), and keyword names (required, optional)."""

    positional: tuple[int, int] = (0, 0)
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    doc: str = ""

    def usage(self, name: str) -> str:
        """`optimal_replicas(target=, [demand=])`: how to call it, for messages and the README."""
        low, high = self.positional
        args = [f"x{i + 1}" for i in range(low)] + (["..."] if high > low else [])
        args += [f"{k}=" for k in self.required] + [f"[{k}=]" for k in self.optional]
        return f"{name}({', '.join(args)})"


# --- the tree -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal (a duration literal is its seconds)."""

    value: float
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    """A belief, looked up in the names given to `evaluate`."""

    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Unary:
    """`-x`."""

    operand: Expr
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    """`not c`."""

    operand: Expr
    column: int


@dataclass(frozen=True, slots=True)
class Binary:
    """`a + b`, `a - b`, `a * b`, `a / b`."""

    op: str
    left: Expr
    right: Expr
    column: int


@dataclass(frozen=True, slots=True)
class Compare:
    """`a < b` and the other comparisons of two numbers."""

    op: str
    left: Expr
    right: Expr
    column: int


@dataclass(frozen=True, slots=True)
class Logic:
    """`a and b`, `a or b` (short-circuit)."""

    op: Literal["and", "or"]
    left: Expr
    right: Expr
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    """`f(x, key=y)` of a whitelisted function."""

    function: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    column: int


Expr = Number | Name | Unary | Not | Binary | Compare | Logic | Call


@dataclass(frozen=True, slots=True)
class Condition:
    """`EXPR [for DURATION]`: a yes/no expression that must have held for `hold_seconds` (0 = now)."""

    expr: Expr
    hold_seconds: float = 0.0


# --- tokens ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["number", "duration", "name", "keyword", "op", "end"]
    text: str
    column: int
    value: float = 0.0


def _tokens(text: str) -> list[_Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    out: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch in _DIGITS:
            i = _number_token(text, i, out)
        elif ch in _NAME_START:
            j = i
            while j < len(text) and text[j] in _NAME_REST:
                j += 1
            word = text[i:j]
            out.append(_Token("keyword" if word in _KEYWORDS else "name", word, i + 1))
            i = j
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise ExpressionError(f"unexpected character {ch!r}", i + 1)
            out.append(_Token("op", op, i + 1))
            i += len(op)
    out.append(_Token("end", "", len(text) + 1))
    return out


def _number_token(text: str, start: int, out: list[_Token]) -> int:
    j = start
    while j < len(text) and text[j] in _DIGITS:
        j += 1
    if j < len(text) and text[j] == ".":
        j += 1
        if j >= len(text) or text[j] not in _DIGITS:
            raise ExpressionError(f"bad number {text[start:j]!r}: digits must follow the point", start + 1)
        while j < len(text) and text[j] in _DIGITS:
            j += 1
    digits = text[start:j]
    k = j
    while k < len(text) and text[k] in _NAME_REST:
        k += 1
    suffix = text[j:k]
    if suffix and suffix not in DURATION_UNITS:
        raise ExpressionError(
            f"bad number {text[start:k]!r} (a duration ends in one of {', '.join(DURATION_UNITS)})", start + 1
        )
    # `digits` is only ASCII digits and at most one point, so float() reads a plain decimal.
    value = float(digits) if len(digits) <= 32 else math.inf
    if not value <= MAX_NUMBER:
        raise ExpressionError(f"number {digits[:20]!r}... is too large (at most {MAX_NUMBER:g})", start + 1)
    if suffix:
        out.append(_Token("duration", text[start:k], start + 1, value * DURATION_UNITS[suffix]))
    else:
        out.append(_Token("number", digits, start + 1, value))
    return k


# --- the parser (recursive descent, depth-bounded) --------------------------------------------------------


class _Parser:
    def __init__(self, text: str, names: Collection[str], functions: Mapping[str, Signature]) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.nesting = 0
        self.names = names
        self.functions = functions

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, kind: str, *texts: str) -> _Token | None:
        token = self.token
        if token.kind == kind and (not texts or token.text in texts):
            self.at += 1
            return token
        return None

    def expect(self, kind: str, text: str, what: str) -> _Token:
        token = self.accept(kind, text)
        if token is None:
            raise self.unexpected(what)
        return token

    def unexpected(self, wanted: str) -> ExpressionError:
        token = self.token
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        return ExpressionError(f"expected {wanted}, found {found}", token.column)

    def nest(self) -> None:
        # Bounds the parser's own recursion, so no input reaches Python's recursion limit.
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExpressionError(f"expression nests too deeply (at most {MAX_DEPTH} levels)", self.token.column)

    def expr(self) -> Expr:
        self.nest()
        left = self.conjunction()
        while token := self.accept("keyword", "or"):
            left = Logic("or", left, self.conjunction(), token.column)
        self.nesting -= 1
        return left

    def conjunction(self) -> Expr:
        left = self.negation()
        while token := self.accept("keyword", "and"):
            left = Logic("and", left, self.negation(), token.column)
        return left

    def negation(self) -> Expr:
        if token := self.accept("keyword", "not"):
            self.nest()
            operand = self.negation()
            self.nesting -= 1
            return Not(operand, token.column)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.sum()
        if token := self.accept("op", "<", "<=", ">", ">=", "==", "!="):
            node = Compare(token.text, left, self.sum(), token.column)
            if self.token.kind == "op" and self.token.text in {"<", "<=", ">", ">=", "==", "!="}:
                raise ExpressionError("comparisons cannot be chained; join them with 'and'", self.token.column)
            return node
        return left

    def sum(self) -> Expr:
        left = self.product()
        while token := self.accept("op", "+", "-"):
            left = Binary(token.text, left, self.product(), token.column)
        return left

    def product(self) -> Expr:
        left = self.unary()
        while token := self.accept("op", "*", "/"):
            left = Binary(token.text, left, self.unary(), token.column)
        return left

    def unary(self) -> Expr:
        if token := self.accept("op", "-", "+"):
            self.nest()
            operand = self.unary()
            self.nesting -= 1
            return Unary(operand, token.column) if token.text == "-" else operand
        return self.primary()

    def primary(self) -> Expr:
        token = self.token
        if token.kind in ("number", "duration"):
            self.take()
            return Number(token.value, token.column)
        if token.kind == "name":
            self.take()
            if self.accept("op", "("):
                return self.call(token)
            if token.text in self.functions:
                raise ExpressionError(
                    f"{token.text!r} is a function: call it, {self.functions[token.text].usage(token.text)}",
                    token.column,
                )
            if token.text not in self.names:
                raise ExpressionError(
                    f"unknown belief name {token.text!r}{_suggest(token.text, self.names)}", token.column
                )
            return Name(token.text, token.column)
        if self.accept("op", "("):
            inner = self.expr()
            self.expect("op", ")", "')'")
            return inner
        raise self.unexpected("a number, a name or '('")

    def call(self, name: _Token) -> Call:
        signature = self.functions.get(name.text)
        if signature is None:
            raise ExpressionError(f"unknown function {name.text!r}{_suggest(name.text, self.functions)}", name.column)
        args: list[Expr] = []
        kwargs: dict[str, Expr] = {}
        while not self.accept("op", ")"):
            if args or kwargs:
                self.expect("op", ",", "',' or ')'")
            token = self.token
            if token.kind == "name" and self.tokens[self.at + 1].text == "=":
                self.at += 2
                if token.text in kwargs:
                    raise ExpressionError(f"{name.text}(): keyword {token.text!r} given twice", token.column)
                kwargs[token.text] = self.expr()
            elif kwargs:
                raise ExpressionError(f"{name.text}(): a positional argument after a keyword one", token.column)
            else:
                args.append(self.expr())
        _check_call(name.text, signature, len(args), kwargs, name.column)
        return Call(name.text, tuple(args), tuple(kwargs.items()), name.column)


def _check_call(name: str, signature: Signature, count: int, kwargs: Mapping[str, Expr], column: int) -> None:
    usage = signature.usage(name)
    low, high = signature.positional
    if not low <= count <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        noun = "argument" if high == 1 else "arguments"
        raise ExpressionError(f"{name}() takes {wanted} positional {noun}, {count} given: {usage}", column)
    allowed = set(signature.required) | set(signature.optional)
    for key in kwargs:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ExpressionError(f"{name}() has no keyword {key!r} (keywords: {known}): {usage}", column)
    missing = [k for k in signature.required if k not in kwargs]
    if missing:
        raise ExpressionError(f"{name}() needs keyword {', '.join(missing)}: {usage}", column)


def _suggest(word: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known: {', '.join(sorted(known))})"


def _type(node: Expr) -> Type:
    match node:
        case Number() | Name() | Call():
            for arg in _children(node):
                _need(arg, "number", "an argument")
            return "number"
        case Unary() | Binary():
            for part in _children(node):
                _need(part, "number", f"an operand of {'-' if isinstance(node, Unary) else node.op!r}")
            return "number"
        case Compare():
            for part in _children(node):
                _need(part, "number", f"an operand of {node.op!r}")
            return "bool"
        case Not() | Logic():
            for part in _children(node):
                _need(part, "bool", f"an operand of {'not' if isinstance(node, Not) else node.op!r}")
            return "bool"
    raise AssertionError(node)


def _need(node: Expr, wanted: Type, what: str) -> None:
    found = _type(node)
    if found != wanted:
        words = {"number": "a number", "bool": "a condition (a comparison, and, or, not)"}
        raise ExpressionError(f"{what} must be {words[wanted]}, not {words[found]}", node.column)


def _children(node: Expr) -> tuple[Expr, ...]:
    match node:
        case Number() | Name():
            return ()
        case Unary() | Not():
            return (node.operand,)
        case Binary() | Compare() | Logic():
            return (node.left, node.right)
        case Call():
            return node.args + tuple(v for _, v in node.kwargs)
    raise AssertionError(node)


def walk(node: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, left to right."""
    yield node
    for child in _children(node):
        yield from walk(child)


def depth(node: Expr) -> int:
    """The tree's depth (a leaf is 1)."""
    return 1 + max((depth(c) for c in _children(node)), default=0)


def _parse(text: str, want: Type, names: Collection[str], functions: Mapping[str, Signature]) -> tuple[Expr, _Parser]:
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, not {type(text).__name__}")
    parser = _Parser(text, names, functions)
    if parser.token.kind == "end":
        raise ExpressionError("empty expression")
    node = parser.expr()
    if depth(node) > MAX_DEPTH:
        raise ExpressionError(f"expression nests too deeply (at most {MAX_DEPTH} levels)", node.column)
    _need(node, want, "the expression")
    return node, parser


def parse_expression(text: str, want: Type, names: Collection[str], functions: Mapping[str, Signature]) -> Expr:
    """Parse and check `text` as an expression of type `want`; `ExpressionError` names what is wrong and where."""
    node, parser = _parse(text, want, names, functions)
    if parser.token.kind != "end":
        raise parser.unexpected("an operator or the end of the expression")
    return node


def parse_condition(text: str, names: Collection[str], functions: Mapping[str, Signature]) -> Condition:
    """Parse `EXPR [for DURATION]`: a yes/no expression and how long it must have held."""
    node, parser = _parse(text, "bool", names, functions)
    if parser.accept("keyword", "for"):
        token = parser.accept("duration")
        if token is None:
            raise parser.unexpected("a duration after 'for' (such as 30m or 2h)")
        if token.value <= 0:
            raise ExpressionError("the hold duration after 'for' must be more than 0", token.column)
        hold = token.value
    else:
        hold = 0.0
    if parser.token.kind != "end":
        raise parser.unexpected("an operator, 'for DURATION' or the end of the condition")
    return Condition(node, hold)


def parse_duration(text: str) -> float:
    """Seconds in a duration literal: `90s`, `30m`, `2h`, `1d` (one number and one unit)."""
    if not isinstance(text, str):
        raise ExpressionError(f"a duration is text such as 30m or 2h, not {type(text).__name__}")
    tokens = _tokens(text.strip())
    if len(tokens) != 2 or tokens[0].kind != "duration":
        raise ExpressionError(f"{text!r} is not a duration: write a number and a unit, such as 90s, 30m, 2h or 1d")
    return tokens[0].value


# --- evaluation -----------------------------------------------------------------------------------------

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def evaluate(node: Expr, names: Mapping[str, float], functions: Mapping[str, Function]) -> float | bool:
    """The value of a parsed expression over `names` and `functions`; `EvaluationError` when it has none."""
    match node:
        case Number(value=value):
            return value
        case Name(name=name):
            if name not in names:
                raise EvaluationError(f"no value for {name!r} here")
            return _finite(float(names[name]), name)
        case Unary(operand=operand):
            return -_as_number(evaluate(operand, names, functions))
        case Not(operand=operand):
            return not evaluate(operand, names, functions)
        case Binary(op=op, left=left, right=right):
            a, b = _as_number(evaluate(left, names, functions)), _as_number(evaluate(right, names, functions))
            if op == "/" and b == 0:
                raise EvaluationError("division by zero")
            return _finite(_ARITHMETIC[op](a, b), op)
        case Compare(op=op, left=left, right=right):
            return _COMPARISONS[op](
                _as_number(evaluate(left, names, functions)), _as_number(evaluate(right, names, functions))
            )
        case Logic(op="and", left=left, right=right):
            return bool(evaluate(left, names, functions)) and bool(evaluate(right, names, functions))
        case Logic(left=left, right=right):
            return bool(evaluate(left, names, functions)) or bool(evaluate(right, names, functions))
        case Call(function=function, args=args, kwargs=kwargs):
            implementation = functions.get(function)
            if implementation is None:
                raise EvaluationError(f"function {function!r} is not available here")
            values = tuple(_as_number(evaluate(a, names, functions)) for a in args)
            keywords = {k: _as_number(evaluate(v, names, functions)) for k, v in kwargs}
            result = implementation(values, keywords)
            if isinstance(result, bool) or not isinstance(result, int | float):
                raise EvaluationError(f"{function}() gave {type(result).__name__}, not a number")
            return _finite(float(result), f"{function}()")
    raise AssertionError(node)


def _as_number(value: float | bool) -> float:
    # Parsing checked types; a bool here means a caller skipped the parser.
    if isinstance(value, bool):
        raise EvaluationError("a condition where a number was expected")
    return value


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise EvaluationError(f"{what} is not a finite number")
    return value
