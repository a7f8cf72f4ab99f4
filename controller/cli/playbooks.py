"""`twinops playbooks ...`: check playbooks before they run (`validate`), and print their format (`schema`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agents.playbook import render_json_schema
from controller.app.playbooks import load_playbooks, playbook_files
from controller.cli._common import console, err_console, fail, one_line, print_json, settings_of

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


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the playbook's name (playbooks/<name>.yaml)")],
    dry_run_: Annotated[
        bool, typer.Option("--dry-run", help="plan and ask the policy on one snapshot; change nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Run a playbook now. Only `--dry-run` exists yet: it says what the playbook would do, and changes nothing."""
    if not dry_run_:
        err_console.print(
            "error: executing a playbook run arrives with PlaybookRunWorkflow; use --dry-run to see what it would do",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    from agents.playbook import PlaybookError
    from controller.app.playbooks import dry_run
    from twin.sources import TwinSourceError

    settings = settings_of(ctx)
    try:
        report = dry_run(name, settings)
    except PlaybookError as exc:
        fail(str(exc))
    except TwinSourceError as exc:
        fail(f"twin source {settings.twin_source!r}: {exc}")
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    console.print(
        f"dry run of {escape(report.playbook)} v{report.version} on {escape(report.twin_id)} "
        f"(observed {report.observed_at.isoformat()}); nothing was changed",
        highlight=False,
        soft_wrap=True,
    )
    console.print(escape(report.history), highlight=False, soft_wrap=True)
    table = Table("node", "step", "action", "what would happen")
    for v in report.steps:
        table.add_row(escape(v.node), escape(v.step), escape(v.action or "-"), escape(v.text))
    for n in report.plan.nodes:
        if not n.steps:
            table.add_row(escape(n.node), "-", "-", escape(n.reason))
    for s in report.plan.skipped:
        table.add_row(escape(s.node), "-", "-", escape(s.reason))
    console.print(table)
