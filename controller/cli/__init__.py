"""The `twinops` command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from controller.cli import audit as _audit
from controller.cli import detect as _detect
from controller.cli import loop as _loop
from controller.cli import plan as _plan
from controller.cli import policy as _policy
from controller.cli import runtime as _runtime
from controller.cli import twin as _twin
from controller.cli import users as _users
from controller.settings import load_settings
from controller.telemetry import configure, shutdown_tracing, span

app = typer.Typer(no_args_is_help=True, add_completion=False, help="twinops: closed-loop remediation controller.")
app.add_typer(_twin.app, name="twin")
app.add_typer(_audit.app, name="audit")
app.add_typer(_policy.app, name="policy")
app.add_typer(_users.app, name="users")
_detect.register(app)
_plan.register(app)
_loop.register(app)
_runtime.register(app)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the console script: configure once, trace the command, run it."""
    settings = load_settings()
    configure(settings)
    words = [a for a in sys.argv[1:3] if not a.startswith("-")]
    try:
        with span("twinops " + " ".join(words), command=" ".join(words)):
            app()
    finally:
        shutdown_tracing()
