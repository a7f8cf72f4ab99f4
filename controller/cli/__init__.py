"""The `twinops` command line. Each module defines its commands on its own Typer app.

Start-up stays fast because nothing heavy is imported before a command runs: the apps
added here (policy, worker, approvals, stack) import Temporal, SQLAlchemy, the policy
engine and the simulator inside their commands, and the modules listed in `_LAZY` are
imported only when invoked (their one-line help is kept here so `--help` needs none of them).
The root callback keeps `--verbose` and the settings, loaded once, for every command
(`controller.cli._common.Invocation`).

`main` turns user-caused errors (bad settings, an unreachable database or Temporal)
into one line naming the setting, exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from controller.cli import _common
from controller.cli import approvals as _approvals
from controller.cli import policy as _policy
from controller.cli import stack as _stack
from controller.cli import worker as _worker

__all__ = ["app", "main"]

# name -> (module, "group" when the module's Typer app is the command group, "command" when the
# command is one of the app's commands; short help)
_LAZY: dict[str, tuple[str, str, str]] = {
    "detect": (
        "controller.cli.detect",
        "command",
        "Find saturated, at-risk and predicted nodes (and latency / data problems); name the constraint.",
    ),
    "plan": (
        "controller.cli.plan",
        "command",
        "Propose the cheapest safe fix: actions, predicted effect, what stays unmet, and why.",
    ),
    "twin": ("controller.cli.twin", "group", "The digital twin: contract, simulator, what-if."),
    "playbooks": (
        "controller.cli.playbooks",
        "group",
        "Playbooks: validate, sync their schedules, run, pause, backfill; dry runs.",
    ),
    "report": (
        "controller.cli.report",
        "command",
        "The report of a playbook run (the newest, or one by id) as Markdown, HTML or JSON.",
    ),
    "audit": ("controller.cli.audit", "group", "The tamper-evident audit trail (RFC 6962 log, signed checkpoints)."),
    "users": ("controller.cli.users", "group", "Manage users (viewer, approver, admin) and their API tokens."),
    "serve": (
        "controller.cli.serve",
        "command",
        "Serve the HTTP API and web UI (sign in at /login) against Temporal and the database.",
    ),
}
_ORDER = ("detect", "plan", "worker", "queue", "approve", "reject", "cancel", "show", "serve", "up", "demo")


class _Placeholder(TyperCommand):
    """Stands in for a lazily imported command in `--help`; never invoked."""


def load_command(name: str) -> TyperCommand | TyperGroup:
    """Import the module behind a lazy command and build its click command."""
    module_name, kind, _ = _LAZY[name]
    command = typer.main.get_command(importlib.import_module(module_name).app)
    if kind == "command" and isinstance(command, TyperGroup):
        command = command.commands[name]
    assert isinstance(command, TyperCommand | TyperGroup)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (_, _, short_help) in _LAZY.items():
            self.add_command(_Placeholder(name, short_help=short_help, help=short_help))

    # Contexts typed Any: Typer vendors its own click, whose types are private.
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        first = [n for n in _ORDER if n in names]
        return first + [n for n in names if n not in first]

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Placeholder):
            command = self.commands[name] = load_command(name)
        return name, command, rest


app = typer.Typer(
    cls=_LazyGroup, no_args_is_help=True, add_completion=False, help="twinops: closed-loop remediation controller."
)
app.add_typer(_policy.app, name="policy")
# Without a name, a sub-app's commands are the root's own: `twinops queue`, `twinops worker`, `twinops up`.
app.add_typer(_worker.app)
app.add_typer(_approvals.app)
app.add_typer(_stack.app)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="log info events on stderr too (default: warnings and errors only)")
    ] = False,
) -> None:
    """twinops: closed-loop remediation controller."""
    # Logging is configured once, by `main` (the edge), not here: in-process callers (tests) keep theirs.
    # The settings are loaded once per invocation: by `main`, which hands them over, or on first use.
    _common.invocation(ctx).verbose = verbose


def _global_options(argv: list[str]) -> list[str]:
    """The options before the command word (`twinops --verbose queue` -> ["--verbose"])."""
    options = []
    for arg in argv:
        if not arg.startswith("-"):
            break
        options.append(arg)
    return options


def _run() -> int:
    from controller.adapters.telemetry import configure, shutdown_tracing, span
    from controller.core.settings import load_settings

    settings = load_settings()
    configure(settings, verbose="--verbose" in _global_options(sys.argv[1:]))
    words = [a for a in sys.argv[1:4] if not a.startswith("-")][:2]
    try:
        with span("twinops " + " ".join(words), command=" ".join(words)):
            app(standalone_mode=True, obj=_common.Invocation(settings=settings))
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        shutdown_tracing()
    return 0


def main() -> None:
    """Entry point of the console script: run the command; a user-caused error is one line, exit 2."""
    from rich.markup import escape

    from controller.cli._common import err_console
    from controller.cli._errors import explain

    try:
        code = _run()
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        code = 2
    _exit(code)


def _exit(code: int) -> None:
    # Temporal's Rust runtime may still run a thread (a connection attempt in flight) when the
    # interpreter finalizes; it then aborts with "PyGILState_Release" (sdk-python issue #300).
    # Once Temporal is loaded, flush and leave without finalizing.
    if "temporalio.bridge.temporal_sdk_bridge" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
