"""Playbook schedules: one Temporal Schedule per schedule trigger of a playbook, kept in step with the files.

Each schedule trigger of a valid playbook becomes one schedule:

- id `playbook-NAME` (`playbook_schedule_id`) for the playbook's first schedule trigger, `playbook-NAME.2`,
  `playbook-NAME.3` for the next ones. The dot is no part of a playbook name, so playbook `a`'s second
  schedule can never be playbook `a-2`'s first.
- action: start `PlaybookRunWorkflow` with a `PlaybookRunInput` (trigger "schedule") built from settings as the
  agent loop's input is; workflow id `playbook-run-NAME` (`.2`, ...), to which Temporal appends the scheduled time.
- spec: the trigger's cron in its IANA time zone.
- policy: overlap SKIP (a run still going when the next is due means that next one is skipped, never stacked);
  catch-up window = the playbook's `limits.max_duration`, so after an outage a run missed by more than its own
  max duration is not caught up (it would act outside the window it was written for); pause on failure.
- a marker in the action's memo, which every run inherits: playbook name and version, cron, time zone, and the
  SHA-256 of the canonical JSON of the desired action, spec and policy (`digest`). The memo is the action's,
  not the schedule's, because an update cannot change a schedule's own memo.

Sync owns every `playbook-*` schedule. `plan_sync` compares digests (exact, one describe per schedule) and
`apply_sync` creates, updates and deletes. A file that does not load is a problem, and its schedules are left
alone: a typo never deletes a schedule. Sync never resumes a paused schedule; an update keeps the paused state
and its note.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from agents import load_desires
from agents.playbook import Playbook, Problem, ScheduleTrigger
from controller.app.decision_signer import DecisionSigner
from controller.app.playbooks import load_playbooks, playbook_files
from controller.core.errors import ConfigurationError, ConflictError, NotFoundError
from controller.core.settings import Settings
from workflows import Timeouts
from workflows.playbook_contracts import (
    PlaybookRunInput,
    PlaybookRunReport,
    PlaybookRunStatus,
    Trigger,
    canonical_digest,
    playbook_digest,
    playbook_run_id,
    playbook_schedule_id,
)

__all__ = [
    "BACKFILL_OVERLAP",
    "RUN_WORKFLOW",
    "DesiredSchedule",
    "LastRun",
    "PlaybookRow",
    "ScheduleChange",
    "SyncPlan",
    "apply_sync",
    "backfill",
    "list_playbooks",
    "pause",
    "plan_sync",
    "playbook_run_input",
    "start_run",
    "unpause",
    "wait_for_run",
]

RUN_WORKFLOW = "PlaybookRunWorkflow"
"""The workflow type a schedule starts (by name: the schedule needs the type only when a run starts)."""

BACKFILL_OVERLAP = ScheduleOverlapPolicy.BUFFER_ALL
"""Backfilled runs go one after another, none dropped: two runs of one playbook at once would plan on the same
nodes and race each other's remediations (ALLOW_ALL), and SKIP would drop all but the first."""

_PREFIX = playbook_schedule_id("")
_RUN_PREFIX = "playbook-run-"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# A run's workflow id: the schedule's (`playbook-run-NAME[.k]` + `-` + scheduled time) or a manual run's.
_RUN_ID = re.compile(
    r"^playbook-run-(?P<name>[a-z0-9][a-z0-9-]*?)(?:\.\d+)?-(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\d{8}T\d{6}Z)$"
)


def _schedule_ids(name: str, index: int) -> tuple[str, str]:
    """The schedule id and the run workflow id of a playbook's `index`th schedule trigger (1-based)."""
    suffix = "" if index == 1 else f".{index}"
    return playbook_schedule_id(name) + suffix, f"{_RUN_PREFIX}{name}{suffix}"


def _schedule_triggers(playbook: Playbook) -> list[ScheduleTrigger]:
    return [t for t in playbook.triggers if isinstance(t, ScheduleTrigger)]


def _name_of(schedule_id: str) -> str:
    return re.sub(r"\.\d+$", "", schedule_id.removeprefix(_PREFIX))


# --- run input ----------------------------------------------------------------------------------------


def _run_defaults(settings: Settings) -> dict[str, Any]:
    """What every run's input takes from settings: timeouts, the approval service's key, the desires' SLOs."""
    try:
        desires_text = settings.desires_file.read_text(encoding="utf-8") if settings.desires_file else None
    except OSError as exc:
        raise ConfigurationError(f"TWINOPS_DESIRES_FILE {settings.desires_file}: {exc.strerror or exc}") from exc
    return {
        "timeouts": Timeouts(
            approval_seconds=settings.approval_timeout_seconds,
            expiry_seconds=settings.approval_expiry_seconds,
            verification_window_seconds=settings.verification_window_seconds,
            verification_settle_seconds=settings.verification_settle_seconds,
        ),
        "approval_key": DecisionSigner.from_settings(settings).public_key_b64,
        "latency_slo_ms": dict(load_desires(desires_text).latency_slo_ms),
    }


def playbook_run_input(
    settings: Settings, playbook: Playbook, *, trigger: Trigger, requested_by: str | None = None
) -> PlaybookRunInput:
    """A run's input: the playbook, and timeouts, approval key and latency SLOs as the agent loop gets them."""
    return PlaybookRunInput(playbook=playbook, trigger=trigger, requested_by=requested_by, **_run_defaults(settings))


# --- desired state ------------------------------------------------------------------------------------


class _Marker(BaseModel):
    """What sync leaves in a schedule's action memo (every run inherits it)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    playbook: str
    version: int
    cron: str
    timezone: str
    digest: str
    playbook_digest: str


@dataclass(frozen=True)
class DesiredSchedule:
    """The schedule one schedule trigger of a valid playbook asks for."""

    schedule_id: str
    workflow_id: str
    task_queue: str
    trigger: ScheduleTrigger
    run_input: PlaybookRunInput

    @property
    def playbook(self) -> Playbook:
        """The playbook the schedule runs."""
        return self.run_input.playbook

    def _policy(self) -> SchedulePolicy:
        return SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(seconds=self.playbook.limits.max_duration),
            pause_on_failure=True,
        )

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the action, spec and policy: equal digests, equal schedules."""
        policy = self._policy()
        return canonical_digest(
            {
                "action": {
                    "workflow": RUN_WORKFLOW,
                    "id": self.workflow_id,
                    "task_queue": self.task_queue,
                    "input": self.run_input.model_dump(mode="json"),
                },
                "spec": {"cron": self.trigger.cron, "time_zone": self.trigger.timezone},
                "policy": {
                    "overlap": policy.overlap.name,
                    "catchup_window_seconds": self.playbook.limits.max_duration,
                    "pause_on_failure": policy.pause_on_failure,
                },
            }
        )

    def marker(self) -> _Marker:
        """The memo sync compares against next time."""
        return _Marker(
            playbook=self.playbook.name,
            version=self.playbook.version,
            cron=self.trigger.cron,
            timezone=self.trigger.timezone,
            digest=self.digest(),
            playbook_digest=playbook_digest(self.playbook),
        )

    def schedule(self, state: ScheduleState | None = None) -> Schedule:
        """The Temporal schedule; `state` (paused, note) is kept from the existing one on update."""
        return Schedule(
            action=ScheduleActionStartWorkflow(
                RUN_WORKFLOW,
                self.run_input,
                id=self.workflow_id,
                task_queue=self.task_queue,
                memo=self.marker().model_dump(),
            ),
            spec=ScheduleSpec(cron_expressions=[self.trigger.cron], time_zone_name=self.trigger.timezone),
            policy=self._policy(),
            state=state or ScheduleState(),
        )


@dataclass(frozen=True)
class _Files:
    """The playbooks directory read: valid playbooks, problems, and the names of files that do not load."""

    playbooks: dict[str, Playbook]
    problems: tuple[Problem, ...]
    invalid: frozenset[str]


def _read_files(settings: Settings) -> _Files:
    directory = settings.playbooks_dir
    # Fail closed: a mistyped TWINOPS_PLAYBOOKS_DIR must not read as "no playbooks" and delete every schedule.
    if not directory.is_dir():
        raise ConfigurationError(f"TWINOPS_PLAYBOOKS_DIR {directory} is not a directory")
    paths = playbook_files(directory)
    loaded = load_playbooks(paths, directory.parent)
    valid = {loaded.files[name].stem for name in loaded.playbooks}
    return _Files(dict(loaded.playbooks), loaded.problems, frozenset(p.stem for p in paths) - valid)


def _desired(settings: Settings) -> tuple[dict[str, DesiredSchedule], _Files]:
    """Every schedule the playbook files ask for, by schedule id, and what reading the files gave."""
    files = _read_files(settings)
    defaults = _run_defaults(settings) if any(map(_schedule_triggers, files.playbooks.values())) else {}
    desired: dict[str, DesiredSchedule] = {}
    for playbook in files.playbooks.values():
        run_input = PlaybookRunInput(playbook=playbook, trigger="schedule", **defaults)
        for index, trigger in enumerate(_schedule_triggers(playbook), start=1):
            schedule_id, workflow_id = _schedule_ids(playbook.name, index)
            desired[schedule_id] = DesiredSchedule(
                schedule_id, workflow_id, settings.temporal_task_queue, trigger, run_input
            )
    return desired, files


# --- what Temporal has --------------------------------------------------------------------------------


async def _listed(client: Client) -> set[str]:
    """Ids of `playbook-*` schedules. Temporal's list is eventually consistent: one made a moment ago may be missing."""
    return {s.id async for s in await client.list_schedules() if s.id.startswith(_PREFIX)}


async def _describe(client: Client, schedule_id: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _describe_all(client: Client, ids: set[str]) -> dict[str, ScheduleDescription]:
    """The schedules among `ids` that exist (describe is consistent where the list is not)."""
    ordered = sorted(ids)
    found = await asyncio.gather(*(_describe(client, i) for i in ordered))
    return {i: d for i, d in zip(ordered, found, strict=True) if d is not None}


async def _marker_of(client: Client, description: ScheduleDescription) -> _Marker | None:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return None
    memo: dict[str, Any] = {}
    for key, value in action.memo.items():
        memo[key] = (await client.data_converter.decode([value]))[0] if isinstance(value, Payload) else value
    try:
        return _Marker.model_validate(memo)
    except ValidationError:
        return None


# --- sync ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleChange:
    """One schedule sync creates, updates, deletes or leaves alone, and what changed (or why)."""

    schedule_id: str
    playbook: str
    what: tuple[str, ...] = ()
    desired: DesiredSchedule | None = None


@dataclass(frozen=True)
class SyncPlan:
    """What `apply_sync` will do; `kept` are schedules of files that do not load, left as they are."""

    create: tuple[ScheduleChange, ...] = ()
    update: tuple[ScheduleChange, ...] = ()
    delete: tuple[ScheduleChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    kept: tuple[ScheduleChange, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def changes(self) -> bool:
        """Whether applying the plan changes anything."""
        return bool(self.create or self.update or self.delete)


def _what_changed(old: _Marker | None, new: _Marker) -> tuple[str, ...]:
    if old is None:
        return ("no sync marker (made outside twinops); replaced",)
    what: list[str] = []
    if old.cron != new.cron:
        what.append(f"cron {old.cron!r} -> {new.cron!r}")
    if old.timezone != new.timezone:
        what.append(f"time zone {old.timezone} -> {new.timezone}")
    if old.version != new.version:
        what.append(f"version {old.version} -> {new.version}")
    elif old.playbook_digest != new.playbook_digest:
        what.append(f"content changed, still version {new.version} (raise its version)")
    if old.playbook_digest == new.playbook_digest:
        what.append("run settings changed (task queue, timeouts, approval key or latency SLOs)")
    return tuple(what)


async def plan_sync(client: Client, settings: Settings) -> SyncPlan:
    """Compare the playbook files with the `playbook-*` schedules; change nothing.

    A schedule whose marker digest equals the desired one is unchanged; any other difference is an update.
    A `playbook-*` schedule no valid playbook asks for is deleted, unless its file does not load (kept).
    A schedule created a moment ago may not be listed yet, so its deletion can take one more sync. The marker
    records what sync last wrote: a hand edit of a schedule that leaves its memo alone goes unseen.
    """
    desired, files = _desired(settings)
    existing = await _describe_all(client, await _listed(client) | set(desired))
    markers = dict(
        zip(existing, await asyncio.gather(*(_marker_of(client, d) for d in existing.values())), strict=True)
    )
    create, update, delete, kept, unchanged = [], [], [], [], []
    for schedule_id, want in sorted(desired.items()):
        new = want.marker()
        if schedule_id not in existing:
            what = (f"cron {new.cron!r} {new.timezone}", f"version {new.version}")
            create.append(ScheduleChange(schedule_id, new.playbook, what, want))
        elif (old := markers[schedule_id]) is not None and old.digest == new.digest:
            unchanged.append(schedule_id)
        else:
            update.append(ScheduleChange(schedule_id, new.playbook, _what_changed(old, new), want))
    for schedule_id in sorted(set(existing) - set(desired)):
        marker = markers[schedule_id]
        name = marker.playbook if marker is not None else _name_of(schedule_id)
        if name in files.invalid:
            kept.append(ScheduleChange(schedule_id, name, (f"{name}.yaml does not load; its schedule is left alone",)))
        elif name in files.playbooks:
            count = len(_schedule_triggers(files.playbooks[name]))
            why = "no schedule trigger any more" if count == 0 else f"now {count} schedule trigger(s)"
            delete.append(ScheduleChange(schedule_id, name, (why,)))
        else:
            delete.append(ScheduleChange(schedule_id, name, (f"no playbook {name!r} any more",)))
    return SyncPlan(tuple(create), tuple(update), tuple(delete), tuple(unchanged), tuple(kept), files.problems)


async def apply_sync(client: Client, plan: SyncPlan) -> None:
    """Make the plan so: create, update (keeping paused state and note), delete. Never resumes a schedule."""
    for change in plan.create:
        assert change.desired is not None
        try:
            await client.create_schedule(change.schedule_id, change.desired.schedule())
        except ScheduleAlreadyRunningError:
            await _update(client, change.desired)  # created since the plan was made
    for change in plan.update:
        assert change.desired is not None
        await _update(client, change.desired)
    for change in plan.delete:
        try:
            await client.get_schedule_handle(change.schedule_id).delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


async def _update(client: Client, desired: DesiredSchedule) -> None:
    def updater(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=desired.schedule(state=current.description.schedule.state))

    await client.get_schedule_handle(desired.schedule_id).update(updater)


# --- operations on one playbook's schedules ----------------------------------------------------------


async def _schedules_of(client: Client, name: str) -> dict[str, ScheduleDescription]:
    base = playbook_schedule_id(name)
    ids = {base} | {i for i in await _listed(client) if i.startswith(base + ".")}
    found = await _describe_all(client, ids)
    if not found:
        raise NotFoundError(f"no schedule for playbook {name!r} (`twinops playbooks sync` creates them)")
    return found


async def pause(client: Client, name: str, note: str | None = None) -> list[str]:
    """Pause every schedule of playbook `name`; sync keeps it paused. Returns the schedule ids."""
    schedules = await _schedules_of(client, name)
    for schedule_id in schedules:
        await client.get_schedule_handle(schedule_id).pause(note=note or "paused with `twinops playbooks pause`")
    return list(schedules)


async def unpause(client: Client, name: str, note: str | None = None) -> list[str]:
    """Resume every schedule of playbook `name`. Returns the schedule ids."""
    schedules = await _schedules_of(client, name)
    for schedule_id in schedules:
        await client.get_schedule_handle(schedule_id).unpause(note=note or "unpaused with `twinops playbooks unpause`")
    return list(schedules)


async def backfill(client: Client, name: str, start: datetime, end: datetime) -> list[str]:
    """Run playbook `name` for each of its scheduled times in [start, end], one after another (`BACKFILL_OVERLAP`).

    `start` and `end` must be timezone-aware, `start < end` (ValueError otherwise). The runs' input says
    trigger "schedule": a schedule's action is fixed, a backfill cannot change it. Returns the schedule ids.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("backfill start and end must carry a time zone (or Z for UTC)")
    if start >= end:
        raise ValueError(f"backfill start {start.isoformat()} is not before its end {end.isoformat()}")
    schedules = await _schedules_of(client, name)
    # Temporal's start is exclusive; a second earlier makes a run at exactly `start` count.
    period = ScheduleBackfill(
        start_at=start.astimezone(UTC) - timedelta(seconds=1), end_at=end.astimezone(UTC), overlap=BACKFILL_OVERLAP
    )
    for schedule_id in schedules:
        await client.get_schedule_handle(schedule_id).backfill(period)
    return list(schedules)


async def start_run(
    client: Client,
    settings: Settings,
    playbook: Playbook,
    requested_by: str | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """Start a manual run of `playbook` now (trigger "manual") and return its workflow id."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    workflow_id = playbook_run_id(playbook.name, at)
    run_input = playbook_run_input(settings, playbook, trigger="manual", requested_by=requested_by)
    try:
        await client.start_workflow(
            RUN_WORKFLOW,
            run_input,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            memo={"playbook": playbook.name, "version": playbook.version},
            result_type=PlaybookRunReport,
        )
    except WorkflowAlreadyStartedError as exc:
        raise ConflictError(f"a run of playbook {playbook.name!r} with id {workflow_id} already exists") from exc
    return workflow_id


async def wait_for_run(client: Client, workflow_id: str) -> PlaybookRunReport:
    """The report of run `workflow_id`, once it ends (`WorkflowFailureError` when it failed)."""
    handle = client.get_workflow_handle(workflow_id, result_type=PlaybookRunReport)
    try:
        report: PlaybookRunReport = await handle.result()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"no playbook run {workflow_id!r}") from exc
        raise
    return report


# --- listing ------------------------------------------------------------------------------------------


class LastRun(BaseModel):
    """A playbook's newest run, scheduled or manual."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    started_at: datetime | None
    status: str
    """The workflow's status, lower case: running, completed, failed, terminated, ..."""
    result: PlaybookRunStatus | None = None
    """The report's status, when the workflow completed."""
    summary: str | None = None


class PlaybookRow(BaseModel):
    """One line of `twinops playbooks list`: a playbook's schedule (one line per schedule trigger), or its problem."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int | None = None
    schedule_id: str | None = None
    schedule: str | None = None
    """`cron time-zone`, or None for a playbook without a schedule trigger."""
    paused: bool = False
    note: str | None = None
    next_run: datetime | None = None
    """The next time it runs (None when paused or not synced)."""
    last_run: LastRun | None = None
    synced: bool = False
    """The schedule runs what the file says now."""
    problem: str | None = None


async def _last_run(client: Client, name: str) -> LastRun | None:
    if not _NAME.match(name):
        return None  # not a playbook name, so never a run's; and never spliced into a query
    newest: WorkflowExecution | None = None
    query = f"WorkflowType = '{RUN_WORKFLOW}' AND WorkflowId STARTS_WITH '{_RUN_PREFIX}{name}'"
    async for execution in client.list_workflows(query, limit=1000):
        found = _RUN_ID.match(execution.id)
        if found is None or found["name"] != name:
            continue  # a run of playbook `name-more`
        if newest is None or (execution.start_time, execution.id) > (newest.start_time, newest.id):
            newest = execution
    if newest is None:
        return None
    status = newest.status.name.lower() if newest.status is not None else "unknown"
    if newest.status != WorkflowExecutionStatus.COMPLETED:
        return LastRun(workflow_id=newest.id, started_at=newest.start_time, status=status)
    handle = client.get_workflow_handle(newest.id, run_id=newest.run_id, result_type=PlaybookRunReport)
    try:
        report = await handle.result(follow_runs=False, rpc_timeout=timedelta(seconds=10))
    except (RPCError, WorkflowFailureError, ValueError, TypeError):
        return LastRun(workflow_id=newest.id, started_at=newest.start_time, status=status)
    return LastRun(
        workflow_id=newest.id,
        started_at=newest.start_time,
        status=status,
        result=report.status,
        summary=report.summary(),
    )


def _row(
    name: str, schedule_id: str, description: ScheduleDescription | None, marker: _Marker | None, **fields: Any
) -> PlaybookRow:
    """A schedule's row: its state from Temporal (when it exists), version and schedule from its marker unless given."""
    if marker is not None:
        fields.setdefault("version", marker.version)
        fields.setdefault("schedule", f"{marker.cron} {marker.timezone}")
    if description is None:
        return PlaybookRow(name=name, schedule_id=schedule_id, **fields)
    state = description.schedule.state
    times = description.info.next_action_times
    return PlaybookRow(
        name=name,
        schedule_id=schedule_id,
        paused=state.paused,
        note=state.note,
        next_run=None if state.paused or not times else times[0],
        **fields,
    )


def _problem(name: str, files: _Files) -> str:
    if name in files.invalid:
        return f"{name}.yaml does not load; its schedule is left alone"
    return "no playbook asks for it; `twinops playbooks sync` deletes it"


async def list_playbooks(client: Client, settings: Settings) -> list[PlaybookRow]:
    """Every playbook and `playbook-*` schedule: version, schedule, paused (and why), next run, last run.

    A schedule is `synced` when its marker's playbook digest is the file's (settings are not compared here;
    `plan_sync` compares everything). Files that do not load and schedules without a playbook get a `problem`.
    """
    files = _read_files(settings)
    wanted: dict[str, ScheduleTrigger] = {}
    for each in files.playbooks.values():
        for index, trigger in enumerate(_schedule_triggers(each), start=1):
            wanted[_schedule_ids(each.name, index)[0]] = trigger
    existing = await _describe_all(client, await _listed(client) | set(wanted))
    markers = {i: await _marker_of(client, d) for i, d in existing.items()}
    names = sorted(set(files.playbooks) | files.invalid | {_name_of(i) for i in existing})
    last = dict(zip(names, await asyncio.gather(*(_last_run(client, n) for n in names)), strict=True))
    rows: list[PlaybookRow] = []
    for name in names:
        playbook = files.playbooks.get(name)
        ids = sorted((i for i in set(wanted) | set(existing) if _name_of(i) == name), key=lambda i: (len(i), i))
        if not ids:
            version = playbook.version if playbook is not None else None
            missing = None if playbook is not None else f"{name}.yaml does not load"
            rows.append(PlaybookRow(name=name, version=version, last_run=last[name], problem=missing))
        for schedule_id in ids:
            description, marker = existing.get(schedule_id), markers.get(schedule_id)
            if playbook is None or schedule_id not in wanted:
                rows.append(
                    _row(name, schedule_id, description, marker, problem=_problem(name, files), last_run=last[name])
                )
                continue
            trigger = wanted[schedule_id]
            synced = marker is not None and marker.playbook_digest == playbook_digest(playbook)
            if description is None:
                problem: str | None = "not synced yet (`twinops playbooks sync`)"
            else:
                problem = None if synced else "the file changed since the last sync"
            rows.append(
                _row(
                    name,
                    schedule_id,
                    description,
                    marker,
                    version=playbook.version,
                    schedule=f"{trigger.cron} {trigger.timezone}",
                    synced=synced,
                    problem=problem,
                    last_run=last[name],
                )
            )
    return rows
