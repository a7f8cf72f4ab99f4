"""Playbook files: find them in the playbooks directory and load each with agents' loader.

The format and its checks belong to `agents.playbook`; this module reads the files. A file's
name is its playbook's name (`nightly-rightsize.yaml` holds `name: nightly-rightsize`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agents.playbook import Playbook, PlaybookError, Problem, load_playbook

__all__ = ["LoadedPlaybooks", "load_playbook_file", "load_playbooks", "playbook_files"]


def playbook_files(directory: Path) -> list[Path]:
    """Every playbook file in `directory` (`*.yaml`), by name."""
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def load_playbook_file(path: Path, shown_as: str | None = None) -> Playbook:
    """Read and load one playbook; `PlaybookError` names the file (as `shown_as`, default the path), line and field."""
    file = shown_as or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PlaybookError([Problem(file, None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise PlaybookError([Problem(file, None, "", f"not UTF-8 text (byte {exc.start})")]) from exc
    return load_playbook(text, file, name=path.stem)


@dataclass(frozen=True)
class LoadedPlaybooks:
    """What loading a set of files gave: the valid playbooks by name, and every problem of the others."""

    playbooks: dict[str, Playbook] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def load_playbooks(paths: Iterable[Path], base: Path | None = None) -> LoadedPlaybooks:
    """Load every file, collecting problems rather than stopping at the first; two files may not share a name.

    Files under `base` are named relative to it in problems.
    """
    playbooks: dict[str, Playbook] = {}
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in paths:
        shown = _shown(path, base)
        try:
            playbook = load_playbook_file(path, shown)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        if playbook.name in playbooks:
            problems.append(
                Problem(shown, None, "name", f"{playbook.name!r} is also {_shown(files[playbook.name], base)}")
            )
            continue
        playbooks[playbook.name] = playbook
        files[playbook.name] = path
    return LoadedPlaybooks(playbooks, files, tuple(problems))


def _shown(path: Path, base: Path | None) -> str:
    if base is not None and path.is_absolute() and path.is_relative_to(base):
        return str(path.relative_to(base))
    return str(path)
