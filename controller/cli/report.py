"""`twinops report`: the report of a playbook run (the newest, or one by id) as Markdown, HTML or JSON.

Reads the controller database and creates nothing: a missing SQLite file, or a database no
playbook run has reported to, is one line naming it. Exit codes: 0 fine, 2 an unknown run id,
no run yet, or bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from controller.cli._common import err_console, fail, settings_of

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from controller.adapters.playbook_runs import SqlPlaybookRunStore

app = typer.Typer(add_completion=False)

LATEST = "latest"


def _store(database_url: str) -> tuple[Engine, SqlPlaybookRunStore]:
    """An engine and the run store over the existing database at `database_url`, or a one-line exit."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from controller.adapters.playbook_runs import SqlPlaybookRunStore, playbook_runs
    from controller.core.db import create_engine

    url = make_url(database_url)
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
            fail(f"database {url.database or where}: does not exist; no playbook run has been reported yet")
        where = url.database
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn).has_table(playbook_runs.name)
    except SQLAlchemyError as exc:
        engine.dispose()
        orig = getattr(exc, "orig", None)
        reason = str(orig or exc).strip().splitlines()
        fail(f"database {where}: cannot be read ({reason[0] if reason else type(exc).__name__})")
    if not found:
        engine.dispose()
        fail(f"database {where}: no playbook run has been reported yet (no table {playbook_runs.name})")
    return engine, SqlPlaybookRunStore(engine)


@app.command()
def report(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="latest|RUN_ID", help="'latest', or a run id (its workflow id)")],
    playbook: Annotated[
        str | None, typer.Option("--playbook", help="with 'latest': the newest run of this playbook")
    ] = None,
    fmt: Annotated[
        Literal["md", "html", "json"], typer.Option("--format", help="md, html (one self-contained page) or json")
    ] = "md",
    output: Annotated[Path | None, typer.Option("--output", help="file to write (default: stdout)")] = None,
) -> None:
    """The report of a playbook run (the newest, or one by id) as Markdown, HTML or JSON.

    What ran where with before/after figures, what waits for approval, what the policy blocked
    and why, what was rolled back, and what was not acted on. Markdown goes to stdout unless
    --output names a file.
    """
    from controller.app.playbook_reports import render_report
    from controller.core.errors import NotFoundError

    engine, store = _store(settings_of(ctx).resolved_database_url)
    try:
        found = store.latest_sync(playbook) if run == LATEST else store.get_sync(run)
    except NotFoundError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    if playbook is not None and found.playbook != playbook:
        fail(f"playbook run {run!r} is a run of playbook {found.playbook!r}, not {playbook!r}")
    text = render_report(found, fmt)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{output}: {exc.strerror or exc}")
    err_console.print(f"report of {found.run_id} written to {output}", highlight=False, soft_wrap=True)
