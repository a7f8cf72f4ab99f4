"""YAML text -> `Playbook`, or a `PlaybookError` naming the file, line and field of every problem.

The YAML is read with the line of every key and item (agents/playbook/yaml_source.py), validated
into the model, each pydantic error mapped back onto its line, and a few checks across fields
follow. Reading the file is the caller's job.
"""

from __future__ import annotations

from pydantic import ValidationError

from agents.playbook.model import Playbook
from agents.playbook.yaml_source import Located, compose, error_message, error_path, field_path

__all__ = ["field_path", "load_playbook"]


def _cross_checks(playbook: Playbook, located: Located) -> None:
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
    data, located = compose(text, file)
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
            path = error_path(error, data)
            located.problem(path, error_message(error, path))
        raise located.error() from exc
    if name is not None and playbook.name != name:
        located.problem(("name",), f"is {playbook.name!r}; the file says {name!r} (name the file <name>.yaml)")
    _cross_checks(playbook, located)
    if located.problems:
        raise located.error()
    return playbook
