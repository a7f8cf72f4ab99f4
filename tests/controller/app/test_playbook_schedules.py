"""Playbook schedules against the real dev server: sync is idempotent and precise, keeps what it must not touch.

Each test copies the repo's playbooks under names unique to it, so its schedules (`playbook-NAME-TAG`) and
runs are its own; it deletes them and terminates the runs at the end. No worker runs PlaybookRunWorkflow
here unless a test registers a stand-in, so scheduled and manual runs stay open until terminated.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio import workflow
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from controller.adapters.temporal_server import TemporalRuntime
from controller.app.decision_signer import DecisionSigner
from controller.app.playbook_schedules import (
    LastRun,
    apply_sync,
    backfill,
    list_playbooks,
    pause,
    plan_sync,
    playbook_run_input,
    start_run,
    unpause,
    wait_for_run,
)
from controller.app.playbooks import find_playbook, playbook_files
from controller.core.errors import ConfigurationError, ConflictError, NotFoundError
from controller.core.settings import REPO_ROOT, Settings
from tests.workflows.conftest import eventually
from workflows.playbook_contracts import PlaybookRunInput, PlaybookRunReport

pytestmark = pytest.mark.integration

REPO_NAMES = ("drain-backlog", "nightly-rightsize", "prescale-daily-peak")


@dataclass
class Playbooks:
    """A playbooks directory of this test's own copies, and settings pointing at it and the dev server."""

    directory: Path
    settings: Settings
    tag: str
    started: list[str] = field(default_factory=list)
    """Workflow ids of runs the test started (terminated at the end)."""

    def name(self, repo_name: str) -> str:
        """This test's name for a repo playbook."""
        return f"{repo_name}-{self.tag}"

    def path(self, repo_name: str) -> Path:
        """The file of this test's copy of a repo playbook."""
        return self.directory / f"{self.name(repo_name)}.yaml"

    def edit(self, repo_name: str, old: str, new: str) -> None:
        """Replace `old` (which must be there) with `new` in a playbook file."""
        text = self.path(repo_name).read_text()
        assert old in text
        self.path(repo_name).write_text(text.replace(old, new))

    def schedule_ids(self) -> set[str]:
        """The schedule id of each copy (each has one schedule trigger)."""
        return {f"playbook-{self.name(n)}" for n in REPO_NAMES}


def copy_playbooks(directory: Path, tag: str) -> None:
    """The repo's playbooks under `directory`, each renamed `NAME-TAG`."""
    directory.mkdir(parents=True)
    for path in playbook_files(REPO_ROOT / "playbooks"):
        name = f"{path.stem}-{tag}"
        text = path.read_text().replace(f"name: {path.stem}\n", f"name: {name}\n")
        (directory / f"{name}.yaml").write_text(text)


async def remove_schedules_and_runs(client: Client, tag: str, also: Iterable[str] = ()) -> None:
    """Delete every schedule whose id carries `tag` and terminate every open run that does (and `also`)."""
    ids = {s.id async for s in await client.list_schedules() if tag in s.id}
    ids |= {f"playbook-{n}-{tag}{k}" for n in REPO_NAMES for k in ("", ".2")}
    for schedule_id in ids:
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    runs = {
        w.id
        async for w in client.list_workflows("WorkflowId STARTS_WITH 'playbook-run-' AND ExecutionStatus = 'Running'")
        if tag in w.id
    }
    for workflow_id in runs | set(also):
        try:
            await client.get_workflow_handle(workflow_id).terminate("test over")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND and "already completed" not in exc.message:
                raise


async def listed(client: Client, ids: set[str]) -> None:
    """Wait until Temporal's (eventually consistent) schedule list shows `ids`."""
    await eventually(lambda: _ids(client), lambda found: ids <= found)


async def _ids(client: Client) -> set[str]:
    return {s.id async for s in await client.list_schedules()}


async def describe(client: Client, schedule_id: str) -> ScheduleDescription:
    return await client.get_schedule_handle(schedule_id).describe()


@pytest.fixture
async def books(tmp_path: Path, temporal: TemporalRuntime) -> AsyncIterator[Playbooks]:
    assert temporal.info is not None
    tag = uuid.uuid4().hex[:8]
    copy_playbooks(tmp_path / "playbooks", tag)
    settings = Settings(
        home=tmp_path / "home",
        temporal_address=temporal.info.address,
        playbooks_dir=tmp_path / "playbooks",
        temporal_task_queue=f"test-{tag}",
    )
    books = Playbooks(tmp_path / "playbooks", settings, tag)
    try:
        yield books
    finally:
        await remove_schedules_and_runs(temporal.client, tag, books.started)


async def synced(client: Client, settings: Settings) -> None:
    await apply_sync(client, await plan_sync(client, settings))


async def test_sync_creates_one_schedule_per_trigger_and_a_second_sync_has_nothing_to_do(
    temporal: TemporalRuntime, books: Playbooks
) -> None:
    client = temporal.client
    first = await plan_sync(client, books.settings)
    assert {c.schedule_id for c in first.create} == books.schedule_ids()
    assert not first.update and not first.problems and not first.kept
    nightly = next(c for c in first.create if c.playbook == books.name("nightly-rightsize"))
    assert nightly.what == ("cron '30 2 * * *' UTC", "version 1")
    await apply_sync(client, first)

    second = await plan_sync(client, books.settings)
    assert (second.create, second.update, second.delete, second.kept) == ((), (), (), ())
    assert set(second.unchanged) == books.schedule_ids()
    assert not second.changes

    d = await describe(client, f"playbook-{books.name('prescale-daily-peak')}")
    assert d.schedule.spec.time_zone_name == "Europe/Berlin"
    assert d.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert d.schedule.policy.catchup_window == timedelta(hours=1)  # the playbook's max_duration
    assert d.schedule.policy.pause_on_failure
    action = d.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        "PlaybookRunWorkflow",
        f"playbook-run-{books.name('prescale-daily-peak')}",
        books.settings.temporal_task_queue,
    )
    berlin = d.info.next_action_times[0].astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute, berlin.weekday() < 5) == (7, 30, True)


async def test_an_edited_cron_is_exactly_one_update_and_says_what_changed(
    temporal: TemporalRuntime, books: Playbooks
) -> None:
    client = temporal.client
    await synced(client, books.settings)
    books.edit("nightly-rightsize", 'cron: "30 2 * * *"', 'cron: "45 3 * * *"')
    plan = await plan_sync(client, books.settings)
    assert [c.schedule_id for c in plan.update] == [f"playbook-{books.name('nightly-rightsize')}"]
    assert plan.update[0].what == (
        "cron '30 2 * * *' -> '45 3 * * *'",
        "content changed, still version 1 (raise its version)",
    )
    assert not plan.create and not plan.delete
    await apply_sync(client, plan)
    d = await describe(client, f"playbook-{books.name('nightly-rightsize')}")
    assert (d.info.next_action_times[0].hour, d.info.next_action_times[0].minute) == (3, 45)

    books.edit("drain-backlog", "version: 2", "version: 3")
    books.edit("drain-backlog", "timezone: UTC", "timezone: Europe/Lisbon")
    plan = await plan_sync(client, books.settings)
    assert [c.what for c in plan.update] == [("time zone UTC -> Europe/Lisbon", "version 2 -> 3")]
    await apply_sync(client, plan)

    # A setting baked into every run's input (the approval timeout) changes every schedule.
    changed = books.settings.model_copy(update={"approval_timeout_seconds": 60.0})
    plan = await plan_sync(client, changed)
    assert {c.schedule_id for c in plan.update} == books.schedule_ids()
    assert {c.what for c in plan.update} == {
        ("run settings changed (task queue, timeouts, approval key or latency SLOs)",)
    }


async def test_a_removed_file_is_one_delete_and_a_trigger_removed_too(
    temporal: TemporalRuntime, books: Playbooks
) -> None:
    client = temporal.client
    await synced(client, books.settings)
    await listed(client, books.schedule_ids())
    books.path("prescale-daily-peak").unlink()
    plan = await plan_sync(client, books.settings)
    assert [(c.schedule_id, c.what) for c in plan.delete] == [
        (
            f"playbook-{books.name('prescale-daily-peak')}",
            (f"no playbook {books.name('prescale-daily-peak')!r} any more",),
        )
    ]
    assert not plan.create and not plan.update
    await apply_sync(client, plan)
    with pytest.raises(RPCError):
        await describe(client, f"playbook-{books.name('prescale-daily-peak')}")

    # drain-backlog keeps its finding trigger: the playbook stays, its schedule goes.
    books.edit("drain-backlog", '  - type: schedule\n    cron: "*/15 * * * *"\n    timezone: UTC\n', "")
    plan = await plan_sync(client, books.settings)
    assert [(c.schedule_id, c.what) for c in plan.delete] == [
        (f"playbook-{books.name('drain-backlog')}", ("no schedule trigger any more",))
    ]


async def test_a_second_schedule_trigger_gets_its_own_schedule(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    books.edit(
        "nightly-rightsize",
        "    timezone: UTC\n",
        '    timezone: UTC\n  - type: schedule\n    cron: "0 14 * * SAT"\n    timezone: Asia/Tokyo\n',
    )
    plan = await plan_sync(client, books.settings)
    second = f"playbook-{books.name('nightly-rightsize')}.2"
    assert second in {c.schedule_id for c in plan.create}
    await apply_sync(client, plan)
    action = (await describe(client, second)).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.id == f"playbook-run-{books.name('nightly-rightsize')}.2"
    await listed(client, {second})  # pause finds a playbook's further schedules in the list
    assert await pause(client, books.name("nightly-rightsize"), "both") == [
        f"playbook-{books.name('nightly-rightsize')}",
        second,
    ]


async def test_an_invalid_file_keeps_its_schedule_and_is_reported(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    await synced(client, books.settings)
    await listed(client, books.schedule_ids())
    books.edit("nightly-rightsize", "max_nodes: 10", "max_nodes: ten")
    plan = await plan_sync(client, books.settings)
    schedule_id = f"playbook-{books.name('nightly-rightsize')}"
    assert not plan.delete and not plan.create and not plan.update
    assert [(c.schedule_id, c.what) for c in plan.kept] == [
        (schedule_id, (f"{books.name('nightly-rightsize')}.yaml does not load; its schedule is left alone",))
    ]
    assert len(plan.problems) == 1
    assert plan.problems[0].file == f"playbooks/{books.name('nightly-rightsize')}.yaml"
    assert plan.problems[0].field == "limits.max_nodes"
    await apply_sync(client, plan)
    assert (await describe(client, schedule_id)).id == schedule_id


async def test_pause_survives_a_sync_that_updates_the_schedule_and_unpause_resumes(
    temporal: TemporalRuntime, books: Playbooks
) -> None:
    client = temporal.client
    await synced(client, books.settings)
    name = books.name("nightly-rightsize")
    assert await pause(client, name, "change freeze") == [f"playbook-{name}"]
    books.edit("nightly-rightsize", "version: 1", "version: 2")
    plan = await plan_sync(client, books.settings)
    assert [c.what for c in plan.update] == [("version 1 -> 2",)]
    await apply_sync(client, plan)
    state = (await describe(client, f"playbook-{name}")).schedule.state
    assert (state.paused, state.note) == (True, "change freeze")
    assert not (await plan_sync(client, books.settings)).changes

    row = next(r for r in await list_playbooks(client, books.settings) if r.name == name)
    assert (row.paused, row.note, row.next_run, row.version) == (True, "change freeze", None, 2)

    assert await unpause(client, name, "freeze over") == [f"playbook-{name}"]
    state = (await describe(client, f"playbook-{name}")).schedule.state
    assert (state.paused, state.note) == (False, "freeze over")


async def test_list_shows_each_playbook_with_its_next_run(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    before = await list_playbooks(client, books.settings)
    mine = {r.name: r for r in before if books.tag in r.name}
    assert {r.problem for r in mine.values()} == {"not synced yet (`twinops playbooks sync`)"}
    await synced(client, books.settings)
    now = datetime.now(UTC)
    rows = {r.name: r for r in await list_playbooks(client, books.settings) if books.tag in r.name}
    assert set(rows) == {books.name(n) for n in REPO_NAMES}
    nightly = rows[books.name("nightly-rightsize")]
    assert (nightly.version, nightly.schedule, nightly.schedule_id) == (
        1,
        "30 2 * * * UTC",
        f"playbook-{books.name('nightly-rightsize')}",
    )
    assert nightly.synced and nightly.problem is None and not nightly.paused and nightly.last_run is None
    assert nightly.next_run is not None and now < nightly.next_run <= now + timedelta(days=1)
    assert (nightly.next_run.hour, nightly.next_run.minute) == (2, 30)
    drain = rows[books.name("drain-backlog")]
    assert drain.next_run is not None and drain.next_run <= now + timedelta(minutes=15)

    books.edit("nightly-rightsize", "max_nodes: 10", "max_nodes: 9")
    books.edit("prescale-daily-peak", "max_nodes: 10", "max_nodes: ten")
    rows = {r.name: r for r in await list_playbooks(client, books.settings) if books.tag in r.name}
    assert rows[books.name("nightly-rightsize")].problem == "the file changed since the last sync"
    broken = rows[books.name("prescale-daily-peak")]
    assert broken.problem == f"{books.name('prescale-daily-peak')}.yaml does not load; its schedule is left alone"
    assert broken.version == 1 and broken.schedule == "30 7 * * MON-FRI Europe/Berlin"  # from the schedule's marker


async def test_backfill_starts_the_missed_runs_one_after_another(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    await synced(client, books.settings)
    name = books.name("nightly-rightsize")
    start, end = datetime(2025, 1, 6, 2, 30, tzinfo=UTC), datetime(2025, 1, 8, 3, 0, tzinfo=UTC)
    assert await backfill(client, name, start, end) == [f"playbook-{name}"]

    async def runs() -> list[str]:
        query = f"WorkflowId STARTS_WITH 'playbook-run-{name}'"
        return sorted([w.id async for w in client.list_workflows(query)])

    # Buffered one after another: the first (at exactly `start`) runs; the others wait for it to end.
    found = await eventually(runs, bool)
    assert found == [f"playbook-run-{name}-2025-01-06T02:30:00Z"]
    books.started.extend(found)
    d = await describe(client, f"playbook-{name}")
    assert [getattr(a.action, "workflow_id", None) for a in d.info.recent_actions] == found

    with pytest.raises(ValueError, match="time zone"):
        await backfill(client, name, start.replace(tzinfo=None), end)
    with pytest.raises(ValueError, match="not before"):
        await backfill(client, name, end, start)


async def test_start_run_starts_a_manual_run(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    playbook = find_playbook(books.name("drain-backlog"), books.directory)
    at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    workflow_id = await start_run(client, books.settings, playbook, "alice", now=at)
    books.started.append(workflow_id)
    assert workflow_id == f"playbook-run-{books.name('drain-backlog')}-20260301T120005Z"
    d = await client.get_workflow_handle(workflow_id).describe()
    assert (d.workflow_type, d.task_queue, d.status) == (
        "PlaybookRunWorkflow",
        books.settings.temporal_task_queue,
        WorkflowExecutionStatus.RUNNING,
    )
    assert await d.memo() == {"playbook": books.name("drain-backlog"), "version": 2}
    with pytest.raises(ConflictError, match="already exists"):
        await start_run(client, books.settings, playbook, "alice", now=at)


@workflow.defn(name="PlaybookRunWorkflow")
class StandInRun:
    """Stands in for the real PlaybookRunWorkflow: ends at once with a report of nothing done."""

    @workflow.run
    async def run(self, run_input: PlaybookRunInput) -> PlaybookRunReport:
        now = workflow.now()
        return PlaybookRunReport(
            run_id=workflow.info().workflow_id,
            playbook=run_input.playbook.name,
            version=run_input.playbook.version,
            owner=run_input.playbook.owner,
            trigger=run_input.trigger,
            requested_by=run_input.requested_by,
            started_at=now,
            ended_at=now,
            status="succeeded",
        )


async def test_list_shows_the_last_run_and_its_report(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    await synced(client, books.settings)
    name = books.name("nightly-rightsize")
    async with Worker(
        client,
        task_queue=books.settings.temporal_task_queue,
        workflows=[StandInRun],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        workflow_id = await start_run(client, books.settings, find_playbook(name, books.directory), "bob")
        report = await wait_for_run(client, workflow_id)
    assert (report.trigger, report.requested_by, report.status) == ("manual", "bob", "succeeded")

    async def last_run() -> LastRun | None:
        return next(r for r in await list_playbooks(client, books.settings) if r.name == name).last_run

    last = await eventually(last_run, lambda r: r is not None and r.status == "completed")
    assert last is not None
    assert (last.workflow_id, last.result) == (workflow_id, "succeeded")
    assert last.summary == f"playbook {name} v1: succeeded (no matching node)"


async def test_unknown_names_are_errors_naming_them(temporal: TemporalRuntime, books: Playbooks) -> None:
    client = temporal.client
    name = f"nope-{books.tag}"
    for act in (pause(client, name), unpause(client, name)):
        with pytest.raises(NotFoundError, match=f"no schedule for playbook '{name}'"):
            await act
    with pytest.raises(NotFoundError, match=name):
        await backfill(client, name, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    with pytest.raises(NotFoundError, match="no playbook run 'playbook-run-nope'"):
        await wait_for_run(client, "playbook-run-nope")
    missing = books.settings.model_copy(update={"playbooks_dir": books.directory / "typo"})
    with pytest.raises(ConfigurationError, match="is not a directory"):
        await plan_sync(client, missing)


def test_a_run_input_carries_the_timeouts_approval_key_and_slos(tmp_path: Path) -> None:
    desires = tmp_path / "desires.yaml"
    desires.write_text("latency_slo_ms:\n  checkout: 250\n")
    settings = Settings(home=tmp_path, desires_file=desires, approval_timeout_seconds=120.0)
    playbook = find_playbook("nightly-rightsize", REPO_ROOT / "playbooks")
    run_input = playbook_run_input(settings, playbook, trigger="manual", requested_by="carol")
    assert (run_input.trigger, run_input.requested_by, run_input.playbook) == ("manual", "carol", playbook)
    assert run_input.approval_key == DecisionSigner.from_settings(settings).public_key_b64
    assert run_input.timeouts.approval_seconds == 120.0
    assert run_input.latency_slo_ms == {"checkout": 250.0}
