"""`twinops playbooks ...`: check playbooks (`validate`, `schema`), keep their Temporal Schedules in step with the
files (`sync`, `list`, `pause`, `unpause`, `backfill`), and run one now (`run`, or `run --dry-run` to only look).

Temporal and the schedule logic (`controller.app.playbook_schedules`) are imported inside the commands.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Column, Table

from agents.playbook import render_json_schema
from controller.app.playbooks import load_playbooks, playbook_files
from controller.cli._common import console, err_console, fail, one_line, print_json, run_async, settings_of

if TYPE_CHECKING:
    from temporalio.client import Client

    from controller.app.playbook_schedules import PlaybookRow, SyncPlan
    from controller.app.preapprovals import PreapprovalService
    from controller.core.settings import Settings

app = typer.Typer(
    no_args_is_help=True, help="Playbooks: validate them, sync their schedules, list, pause, backfill, run them."
)

T = TypeVar("T")
_NAME = typer.Argument(help="the playbook's name (playbooks/<name>.yaml)")


def _with_client(settings: Settings, act: Callable[[Client], Awaitable[T]]) -> T:
    """Connect to Temporal and run `act`; a TwinopsError (unknown name, no server) is a one-line error, exit 2."""

    async def go() -> T:
        from controller.adapters.temporal_server import connect

        return await act(await connect(settings))

    return run_async(go)


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
    name: Annotated[str, _NAME],
    dry_run_: Annotated[
        bool, typer.Option("--dry-run", help="plan and ask the policy on one snapshot; change nothing")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the run to end and print its report's summary")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Run a playbook now: print the run's workflow id (`--wait`: then its summary). `--dry-run` changes nothing."""
    if dry_run_:
        _dry_run(ctx, name, as_json)
        return
    from temporalio.client import WorkflowFailureError

    from agents.playbook import PlaybookError
    from controller.app.playbook_schedules import start_run, wait_for_run
    from controller.app.playbooks import find_playbook

    settings = settings_of(ctx)
    try:
        playbook = find_playbook(name, settings.playbooks_dir)
    except PlaybookError as exc:
        fail(str(exc))
    # Who asked, for the report: the local account (a run still passes the policy and the approval queue).
    workflow_id = _with_client(settings, lambda c: start_run(c, settings, playbook, getpass.getuser()))
    if as_json and not wait:
        print_json({"workflow_id": workflow_id})
    if not as_json:
        console.print(workflow_id, highlight=False)
    if not wait:
        return
    try:
        report = _with_client(settings, lambda c: wait_for_run(c, workflow_id))
    except WorkflowFailureError as exc:
        fail(f"playbook run {workflow_id} failed: {exc.cause or exc}")
    if as_json:
        print_json({"workflow_id": workflow_id, "report": report.model_dump(mode="json")})
    else:
        console.print(escape(report.summary()), highlight=False, soft_wrap=True)


def _dry_run(ctx: typer.Context, name: str, as_json: bool) -> None:
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


def _line(text: str) -> None:
    console.print(escape(text), highlight=False, soft_wrap=True)


def _print_plan(plan: SyncPlan, dry_run_: bool) -> None:
    for problem in plan.problems:
        err_console.print(f"[bold red]error:[/] {escape(one_line(str(problem)))}", highlight=False, soft_wrap=True)
    for verb, changes in (("create", plan.create), ("update", plan.update), ("delete", plan.delete)):
        for change in changes:
            _line(f"{verb} {change.schedule_id}: {'; '.join(change.what)}")
    for change in plan.kept:
        _line(f"left alone {change.schedule_id}: {'; '.join(change.what)}")
    if not plan.changes:
        _line("no changes")
    elif dry_run_:
        _line("dry run: nothing was changed")


@app.command()
def sync(
    ctx: typer.Context,
    dry_run_: Annotated[bool, typer.Option("--dry-run", help="print what would change; change nothing")] = False,
) -> None:
    """Make the playbook schedules match the files: one line per create, update, delete; exit 2 on invalid files.

    The valid playbooks are synced even then; the schedules of files that do not load are left alone.
    A paused schedule stays paused.
    """
    from controller.app.playbook_schedules import apply_sync, plan_sync

    settings = settings_of(ctx)

    async def go(client: Client) -> SyncPlan:
        plan = await plan_sync(client, settings)
        if plan.changes and not dry_run_:
            await apply_sync(client, plan)
        return plan

    plan = _with_client(settings, go)
    _print_plan(plan, dry_run_)
    if plan.problems:
        raise typer.Exit(2)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else "-"


def _state(row: PlaybookRow) -> str:
    if row.problem:
        return f"[red]{escape(row.problem)}[/]"
    if row.schedule_id is None:
        return "no schedule trigger"
    return f"paused: {escape(row.note or '')}" if row.paused else "active"


def _last(row: PlaybookRow) -> str:
    last = row.last_run
    if last is None:
        return "-"
    outcome = last.status if last.result is None else f"{last.status}, {last.result.replace('_', ' ')}"
    return f"{_when(last.started_at)} {outcome}\n{escape(last.workflow_id)}"


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every playbook with its schedule: version, cron and time zone, paused or not, next run, last run."""
    from controller.app.playbook_schedules import list_playbooks

    settings = settings_of(ctx)
    rows = _with_client(settings, lambda c: list_playbooks(c, settings))
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    # Names and run ids are what the next command takes: folded onto more lines, never cut.
    table = Table(
        Column("playbook", overflow="fold", min_width=17),
        "version",
        "schedule",
        "state",
        "next run",
        Column("last run", overflow="fold", min_width=20),
    )
    for row in rows:
        table.add_row(
            escape(row.name),
            str(row.version) if row.version is not None else "-",
            escape(row.schedule or "-"),
            _state(row),
            _when(row.next_run),
            _last(row),
        )
    console.print(table)


@app.command()
def pause(
    ctx: typer.Context,
    name: Annotated[str, _NAME],
    note: Annotated[str | None, typer.Option("--note", help="why (shown by `list`)")] = None,
) -> None:
    """Pause a playbook's schedules; `sync` keeps them paused."""
    from controller.app import playbook_schedules

    ids = _with_client(settings_of(ctx), lambda c: playbook_schedules.pause(c, name, note))
    for schedule_id in ids:
        _line(f"paused {schedule_id}")


@app.command()
def unpause(
    ctx: typer.Context,
    name: Annotated[str, _NAME],
    note: Annotated[str | None, typer.Option("--note", help="why (shown by `list`)")] = None,
) -> None:
    """Resume a playbook's schedules."""
    from controller.app import playbook_schedules

    ids = _with_client(settings_of(ctx), lambda c: playbook_schedules.unpause(c, name, note))
    for schedule_id in ids:
        _line(f"unpaused {schedule_id}")


def _instant(option: str, text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r}: not an ISO 8601 time (2025-01-06T02:30:00Z)")
    if at.tzinfo is None:
        fail(f"{option} {text!r}: give a time zone (Z for UTC, or an offset such as +01:00)")
    return at


@app.command()
def backfill(
    ctx: typer.Context,
    name: Annotated[str, _NAME],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 time with a zone, e.g. 2025-01-06T00:00:00Z")],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 time with a zone, after --start")],
) -> None:
    """Run a playbook for each time its schedule would have fired from --start to --end, one run after another."""
    from controller.app import playbook_schedules

    first, last = _instant("--start", start), _instant("--end", end)
    if first >= last:
        fail(f"--start {start} is not before --end {end}")
    ids = _with_client(settings_of(ctx), lambda c: playbook_schedules.backfill(c, name, first, last))
    for schedule_id in ids:
        _line(f"backfilled {schedule_id} from {first.isoformat()} to {last.isoformat()} (runs start one after another)")


def _preapprovals(settings: Settings) -> PreapprovalService:
    """The pre-approval service over the controller's database and the approval service's key."""
    from controller.adapters.identity import Identities
    from controller.adapters.preapprovals import SqlPreapprovalStore
    from controller.app.decision_signer import DecisionSigner
    from controller.app.preapprovals import PreapprovalService
    from controller.core.db import create_engine, migrate

    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    return PreapprovalService(
        SqlPreapprovalStore(engine), Identities(engine), DecisionSigner.from_settings(settings), settings.playbooks_dir
    )


def _token(settings: Settings) -> str:
    if settings.token is None:
        fail("set TWINOPS_TOKEN to your API token (an admin creates one with `twinops users add`)")
    return settings.token.get_secret_value()


@app.command()
def preapprove(
    ctx: typer.Context,
    name: Annotated[str, _NAME],
    run_at: Annotated[str, typer.Option("--run-at", help="the scheduled run, ISO 8601 with a zone")],
    expires: Annotated[str, typer.Option("--expires", help="when the pre-approval lapses, after --run-at")],
    comment: Annotated[str, typer.Option("--comment", help="recorded with each approval it gives")] = "",
) -> None:
    """Approve a scheduled run ahead of time, as the user of TWINOPS_TOKEN.

    The run uses it once, for the steps that would wait for a human; the approval policy still counts
    each approver (quorum, groups; never the user who started a run by hand). Approvers of the same
    run join one pre-approval.
    """
    settings = settings_of(ctx)
    at, until = _instant("--run-at", run_at), _instant("--expires", expires)
    service = _preapprovals(settings)
    record = run_async(lambda: service.preapprove(_token(settings), name, at, until, comment))
    grant = record.grant
    who = ", ".join(a.principal.id for a in grant.approvals)
    _line(
        f"pre-approved {grant.id}: {grant.playbook} v{grant.version} run at {grant.run_at.isoformat()}, "
        f"until {grant.expires_at.isoformat()}; approvals so far: {who}"
    )


@app.command()
def preapprovals(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="only this playbook's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List pre-approvals: the run each covers, who approved, and which run used it."""
    from datetime import UTC

    settings = settings_of(ctx)
    service = _preapprovals(settings)
    records = run_async(lambda: service.list(_token(settings), name))
    if as_json:
        print_json([r.model_dump(mode="json") for r in records])
        return
    now = datetime.now(UTC)
    # Ids and names are what the next command takes: folded onto more lines, never cut.
    table = Table(
        Column("id", overflow="fold", min_width=19),
        Column("playbook", overflow="fold"),
        Column("run at", overflow="fold"),
        Column("expires", overflow="fold"),
        Column("approved by", overflow="fold"),
        Column("status", overflow="fold"),
    )
    for r in records:
        g = r.grant
        status = r.status(now) + (f" by {r.used_by_run}" if r.used_by_run else "")
        table.add_row(
            escape(g.id),
            escape(f"{g.playbook} v{g.version}"),
            g.run_at.isoformat(),
            g.expires_at.isoformat(),
            escape(", ".join(a.principal.id for a in g.approvals) or "-"),
            escape(status),
        )
    console.print(table)
