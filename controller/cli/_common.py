"""Helpers shared by CLI command modules: loading input files with clear errors, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.history import HistoryError, read_history

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error naming what is wrong and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_snapshot_file(path: Path) -> Snapshot:
    """Read a twin.v1 snapshot file or exit with the validation problems."""
    try:
        return parse_snapshot(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except SnapshotError as exc:
        fail(f"{path}: {exc}")


def load_history_file(path: Path | None) -> list[Snapshot]:
    """Read a JSON Lines history (or nothing) or exit naming the bad line."""
    if path is None:
        return []
    try:
        return read_history(path)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except HistoryError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no Rich markup)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
