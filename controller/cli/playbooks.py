"""`twinops playbooks ...`: check playbooks before they run (`validate`), and print their format (`schema`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from agents.playbook import render_json_schema
from controller.app.playbooks import load_playbooks, playbook_files
from controller.cli._common import console, err_console, one_line, settings_of

app = typer.Typer(no_args_is_help=True, help="Playbooks: validate them, print their JSON Schema.")


@app.command()
def validate(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None, typer.Argument(help="playbook files (default: every *.yaml in the playbooks directory)")
    ] = None,
) -> None:
    """Load playbooks as the controller does; print one line per problem (file:line: field: what), exit 2 on any."""
    base = Path.cwd()
    if files:
        paths = files
    else:
        directory = settings_of(ctx).playbooks_dir
        paths = playbook_files(directory)
        if not paths:
            console.print(f"no playbooks in {escape(str(directory))}", highlight=False)
            return
    loaded = load_playbooks(paths, base)
    for problem in loaded.problems:
        err_console.print(f"[bold red]error:[/] {escape(one_line(str(problem)))}", highlight=False, soft_wrap=True)
    for name, playbook in loaded.playbooks.items():
        path = loaded.files[name]
        shown = path.relative_to(base) if path.is_absolute() and path.is_relative_to(base) else path
        steps = len(playbook.steps)
        console.print(
            f"{escape(str(shown))}: valid playbook {name!r} v{playbook.version}, {steps} step{'s' * (steps != 1)}",
            highlight=False,
            soft_wrap=True,
        )
    if loaded.problems:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the playbook JSON Schema (`playbooks/schema.json` is this output)."""
    typer.echo(render_json_schema(), nl=False)
