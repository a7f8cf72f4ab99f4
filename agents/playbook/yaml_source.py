"""YAML text as plain data that remembers the line of every key and item, for refusals naming file, line and field.

The YAML is composed into PyYAML's node tree first, which keeps where each key and item starts;
duplicate keys, anchors and aliases are refused there. Pydantic's error locations are then mapped
back onto that tree (`error_path`, dropping the union tags pydantic inserts) and worded for the
file's author (`error_message`). Playbooks (agents/playbook/load.py) and twin models
(controller/adapters/twin_model.py) are read this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic_core import ErrorDetails

from agents.playbook.errors import PlaybookError, Problem

__all__ = ["Located", "Path", "compose", "error_message", "error_path", "field_path"]

Path = tuple[str | int, ...]
"""Where a value is in the document: keys and item indexes from the top."""


def field_path(path: Sequence[str | int]) -> str:
    """`steps[0].params.replicas` for ("steps", 0, "params", "replicas")."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class Located:
    """Where everything of one YAML document is: the line of every key and item, and the problems found.

    `document` says what the document is in messages (`a playbook`, `a twin model`).
    """

    def __init__(self, file: str, document: str = "a playbook") -> None:
        self.file = file
        self.document = document
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
        """The problems found, in the order of the file, as a playbook's refusal."""
        return PlaybookError(sorted(self.problems, key=lambda p: p.line or 0))

    def problem(self, path: Path, message: str, line: int | None = None) -> None:
        """Add a problem at `path` (on `line`, or the line of `path` or its nearest ancestor)."""
        self.problems.append(Problem(self.file, line or self.line(path), field_path(path), message))

    def walk(self, node: yaml.Node, path: Path, line: int) -> None:
        """Record the line of every key and item under `node`; refuse aliases, duplicate and non-text keys."""
        if id(node) in self._seen:
            # An alias re-uses a node; the composer hands back the same object.
            self.problem(path, f"anchors and aliases are not allowed in {self.document}", line)
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


def compose(text: str, file: str, document: str = "a playbook") -> tuple[Any, Located]:
    """The document's data (None when it cannot be read as one mapping) and where its parts are.

    Anchors, aliases, duplicate keys, invalid YAML and a document that is not a mapping are
    problems of the returned `Located`, each with its line (and column for invalid YAML).
    """
    located = Located(file, document)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            located.problems.append(Problem(file, 1, "", f"empty document: {document} is a mapping"))
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
        located.problems.append(Problem(file, located.lines[()], "", f"{document} is a mapping of fields"))
        return None, located
    return data, located


def error_path(error: ErrorDetails, data: Any) -> Path:
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


def error_message(error: ErrorDetails, path: Path) -> str:
    """Pydantic's error in the words of a file's author (`unknown field 'p99'`, `required field is missing`)."""
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
