"""Helpers shared by CLI command modules: one-line errors, loading input files, JSON output.

This module is imported by every command, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from twin.contract import Snapshot

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error naming what is wrong and exit non-zero (2 unless told)."""
    # soft_wrap: one logical line whatever the terminal width, so scripts can grep it.
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def one_line(text: str) -> str:
    """`text` with its whitespace runs (newlines included) folded into single spaces."""
    return " ".join(text.split())


def load_snapshot_file(path: Path) -> Snapshot:
    """Read a twin.v1 snapshot file or exit with the validation problems.

    Bytes go to the validator undecoded: a file that is not UTF-8 is a validation error naming
    the offset, not a traceback.
    """
    from twin.contract import SnapshotError, parse_snapshot

    try:
        return parse_snapshot(path.read_bytes())
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except SnapshotError as exc:
        fail(f"{path}: {exc}")


def load_history_file(path: Path | None) -> list[Snapshot]:
    """Read a JSON Lines history (or nothing) or exit naming the bad line."""
    if path is None:
        return []
    from twin.history import HistoryError, read_history

    try:
        return read_history(path)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except HistoryError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no Rich markup)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
