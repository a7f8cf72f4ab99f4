"""YAML text -> `Playbook`, or a `PlaybookError` naming the file, line and field of every problem.

The YAML is composed into PyYAML's node tree first, which keeps where each key and item
starts; duplicate keys, anchors and aliases are refused there. Pydantic's error locations
are then mapped back onto that tree (dropping the union tags pydantic inserts), and a few
checks across fields follow. Reading the file is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from agents.playbook.errors import PlaybookError, Problem
from agents.playbook.model import Playbook

__all__ = ["field_path", "load_playbook"]

Path = tuple[str | int, ...]


def field_path(path: Sequence[str | int]) -> str:
    """`steps[0].params.replicas` for ("steps", 0, "params", "replicas")."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Located:
    """The YAML document as plain data, with the line of every key and item."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self._seen: set[int] = set()

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self) -> PlaybookError:
        """The problems found, in the order of the file."""
        return PlaybookError(sorted(self.problems, key=lambda p: p.line or 0))

    def problem(self, path: Path, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.file, line or self.line(path), field_path(path), message))

    def walk(self, node: yaml.Node, path: Path, line: int) -> None:
        if id(node) in self._seen:
            # An alias re-uses a node; the composer hands back the same object.
            self.problem(path, "anchors and aliases are not allowed in a playbook", line)
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if not isinstance(key, yaml.ScalarNode):
                    self.problem(path, "a key must be plain text", line)
                    continue
                if key.value in first:
                    self.problem(
                        (*path, key.value), f"duplicate key {key.value!r} (first on line {first[key.value]})", line
                    )
                    continue
                first[key.value] = line
                self.lines[(*path, key.value)] = line
                self.walk(value, (*path, key.value), line)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                self.walk(item, (*path, index), item.start_mark.line + 1)


def _compose(text: str, file: str) -> tuple[Any, _Located]:
    located = _Located(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            located.problems.append(Problem(file, 1, "", "empty document: a playbook is a mapping"))
            return None, located
        located.lines[()] = node.start_mark.line + 1
        located.walk(node, (), node.start_mark.line + 1)
        if located.problems:
            return None, located
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        what = " ".join(filter(None, [exc.context, exc.problem]))
        if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            what += f" (what it was reading began on line {exc.context_mark.line + 1})"
        located.problems.append(Problem(file, line, "", f"not valid YAML: {what}", column))
        return None, located
    except yaml.YAMLError as exc:
        located.problems.append(Problem(file, None, "", f"not valid YAML: {exc}"))
        return None, located
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        located.problems.append(Problem(file, located.lines[()], "", "a playbook is a mapping of fields"))
        return None, located
    return data, located


def _error_path(error: ErrorDetails, data: Any) -> Path:
    """Pydantic's location as a path through the data: union tags and validator names dropped."""
    path: list[str | int] = []
    cursor = data
    loc = error["loc"]
    for index, part in enumerate(loc):
        in_dict = isinstance(cursor, dict) and part in cursor
        if in_dict or (isinstance(cursor, list) and isinstance(part, int) and 0 <= part < len(cursor)):
            cursor = cursor[part]
            path.append(part)
        elif error["type"] == "missing" and index == len(loc) - 1:
            path.append(part)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
    return tuple(path)


def _message(error: ErrorDetails, path: Path) -> str:
    ctx = error.get("ctx", {})
    match error["type"]:
        case "missing":
            return "required field is missing"
        case "extra_forbidden":
            return f"unknown field {path[-1]!r}" if path else "unknown field"
        case "union_tag_invalid":
            known = str(ctx.get("expected_tags", "")).replace("'", "")
            return f"unknown {path[-1]} {ctx.get('tag')!r} (known: {known})"
        case "union_tag_not_found":
            return f"required field is missing: say which {path[-1]}"
    return str(error["msg"]).removeprefix("Value error, ")


def _cross_checks(playbook: Playbook, located: _Located) -> None:
    names: dict[str, int] = {}
    for i, step in enumerate(playbook.steps):
        if step.verify.within > playbook.limits.max_duration:
            located.problem(
                ("steps", i, "verify", "within"),
                f"verification takes {step.verify.within:g} s, longer than limits.max_duration "
                f"({playbook.limits.max_duration:g} s)",
            )
        if step.name is not None:
            if step.name in names:
                located.problem(("steps", i, "name"), f"step name {step.name!r} is also steps[{names[step.name]}]")
            names.setdefault(step.name, i)
    if len(playbook.target.nodes) > playbook.limits.max_nodes:
        located.problem(
            ("target", "nodes"),
            f"names {len(playbook.target.nodes)} nodes, more than limits.max_nodes ({playbook.limits.max_nodes})",
        )


def load_playbook(text: str, file: str, *, name: str | None = None) -> Playbook:
    """Parse and validate one playbook; `file` names it in errors and `name`, when given, must be its name.

    Raises `PlaybookError` listing every problem found, each with file, line and field.
    """
    data, located = _compose(text, file)
    if data is None:
        raise located.error()
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            if error["type"] == "too_short" and any(
                e["loc"][: len(error["loc"])] == error["loc"] and e is not error for e in errors
            ):
                continue  # pydantic also counts a list short when one of its items failed: say only why
            path = _error_path(error, data)
            located.problem(path, _message(error, path))
        raise located.error() from exc
    if name is not None and playbook.name != name:
        located.problem(("name",), f"is {playbook.name!r}; the file says {name!r} (name the file <name>.yaml)")
    _cross_checks(playbook, located)
    if located.problems:
        raise located.error()
    return playbook
