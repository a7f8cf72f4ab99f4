"""Helpers shared by CLI command modules: the invocation's state, one-line errors, input files, JSON output.

This module is imported by every command, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from controller.core.errors import TwinopsError

if TYPE_CHECKING:
    from controller.core.settings import Settings
    from twin.contract import Snapshot

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


class Invocation:
    """What the root callback keeps for one invocation: `--verbose`, and the settings, loaded once.

    `main` loads the settings before the command runs (telemetry needs them) and hands them over;
    an in-process caller (a test's CliRunner) gets them loaded when a command first asks.
    Commands that need no settings (detect, twin) never load them; plan does only to read the
    stored demand history when its `--history` is too short to forecast from.
    """

    def __init__(self, *, verbose: bool = False, settings: Settings | None = None) -> None:
        self.verbose = verbose
        self._settings = settings

    @property
    def settings(self) -> Settings:
        """The settings from the environment, loaded on first use."""
        if self._settings is None:
            from controller.core.settings import load_settings

            self._settings = load_settings()
        return self._settings


def invocation(ctx: typer.Context) -> Invocation:
    """The state the root callback set up (a fresh one when a sub-app runs without the root)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Invocation):
        root.obj = Invocation()
    return root.obj


def settings_of(ctx: typer.Context) -> Settings:
    """This invocation's settings, loaded once."""
    return invocation(ctx).settings


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error naming what is wrong and exit non-zero (2 unless told)."""
    # soft_wrap: one logical line whatever the terminal width, so scripts can grep it.
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_async(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end; a `TwinopsError` it raises is a one-line error, exit 2."""

    async def runner() -> T:
        return await coro_factory()

    try:
        return asyncio.run(runner())
    except TwinopsError as exc:
        fail(str(exc))


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
