"""In-memory fakes for the workflows' ports, and a worker that runs both workflows over them.

As temporalio, structlog and kopf ship `testing` modules, twinops ships this one, so tests
of rare paths (escalate then expire, withdraw, an approval arriving while the policy is
asked) run fast without SQLite, a Rego engine or the simulator. Integration tests keep
the real adapters.

    ports = FakePorts(twin=FakeTwinSource(snapshot), gate=FakePolicyGate(safety=[allow(), deny("freeze", "...")]))
    async with fake_worker(client, task_queue, ports):
        ...                                         # start RemediationWorkflow on task_queue
    ports.ledger.kinds(proposal_id)                 # ["proposed", "policy_evaluated", ...]

Each fake keeps what it was asked in plain lists and dicts for tests to assert on. The
fakes run on the worker's event loop (activities are async), so a test can hold a policy
call on an `asyncio.Event` and act while it waits.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from temporalio.client import Client
from temporalio.worker import Worker

from agents import Desires, load_desires
from agents.forecast import DemandHistory, DemandRecorder
from controller.adapters.audit import EventConflictError
from controller.adapters.audit.canonical import entry_bytes, entry_fields
from controller.adapters.audit.merkle import leaf_hash
from controller.app.decision_signer import DecisionSigner
from controller.app.worker import Services, build_worker
from controller.core.errors import NotFoundError
from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction, describe
from twin.contract import Snapshot
from twin.sources import TwinSourceError
from workflows.audit import AuditEventInput, AuditRecord
from workflows.playbook_contracts import PlaybookRunReport
from workflows.policy import (
    ApprovalDecision,
    ApprovalInput,
    Reason,
    RiskLevel,
    SafetyDecision,
    SafetyInput,
    deny_decision,
    refuse_approval,
)
from workflows.ports import ActuatorError, InboxEntry, Notification, StepOutcome

__all__ = [
    "FAKE_BUNDLE_REVISION",
    "FAKE_BUNDLE_SHA256",
    "FakeActuator",
    "FakeApprovalInbox",
    "FakeAuditLedger",
    "FakePlaybookRunStore",
    "FakePolicyGate",
    "FakePorts",
    "FakeTwinSource",
    "Hold",
    "RecordingNotifier",
    "allow",
    "deny",
    "fake_worker",
    "quorum",
]

FAKE_BUNDLE_REVISION = "fake"
FAKE_BUNDLE_SHA256 = hashlib.sha256(b"twinops fake policy bundle").hexdigest()
"""What the fake gate stamps on its decisions, so audit payloads validate as real ones do."""
_FAKE_ENGINE = "fake"

_I = TypeVar("_I", SafetyInput, ApprovalInput)
_D = TypeVar("_D", SafetyDecision, ApprovalDecision)


# ---- audit ledger ----------------------------------------------------------------------------


class FakeAuditLedger:
    """Stands in for `SqlAuditLedger` (the `AuditLedger` port): events in a list, no database.

    Idempotent by event id exactly as the real one: the same id with the same content returns
    the stored record, with different content raises the real `EventConflictError`. Records get
    the real ledger's leaf hashes; no tree heads are signed.
    """

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self._by_id: dict[str, AuditRecord] = {}

    async def append(self, event: AuditEventInput) -> AuditRecord:
        """Record `event` once per event id."""
        existing = self._by_id.get(event.event_id)
        if existing is not None:
            stored, wanted = entry_fields(existing, existing.seq), entry_fields(event, existing.seq)
            if entry_bytes(stored) == entry_bytes(wanted):
                return existing
            differing = sorted(k for k in wanted if wanted[k] != stored[k])
            raise EventConflictError(
                f"event {event.event_id!r} is already recorded at seq {existing.seq} with different content "
                f"(differs in: {', '.join(differing)})"
            )
        seq = len(self.records)
        leaf = leaf_hash(entry_bytes(entry_fields(event, seq)))
        record = AuditRecord(**event.model_dump(), seq=seq, leaf_hash=leaf.hex())
        self.records.append(record)
        self._by_id[event.event_id] = record
        return record

    async def trail(self, remediation_id: str) -> list[AuditRecord]:
        """Every event of one remediation, in log order."""
        return [r for r in self.records if r.remediation_id == remediation_id]

    def kinds(self, remediation_id: str) -> list[str]:
        """The kinds of one remediation's events, in log order."""
        return [r.kind.value for r in self.records if r.remediation_id == remediation_id]


# ---- policy gate -----------------------------------------------------------------------------


def allow(
    required_approvals: int = 1,
    *,
    risk: RiskLevel = "medium",
    approver_groups: Sequence[str] = (),
    auto_approve: bool = False,
) -> SafetyDecision:
    """A safety decision that allows, asking for `required_approvals` (or auto-approving)."""
    return SafetyDecision(
        allow=True,
        deny=[],
        risk=risk,
        required_approvals=0 if auto_approve else required_approvals,
        approver_groups=list(approver_groups),
        auto_approve=auto_approve,
        bundle_revision=FAKE_BUNDLE_REVISION,
        bundle_sha256=FAKE_BUNDLE_SHA256,
        engine=_FAKE_ENGINE,
    )


def deny(code: str, msg: str) -> SafetyDecision:
    """A safety decision that denies for one reason."""
    return deny_decision(
        code, msg, bundle_revision=FAKE_BUNDLE_REVISION, bundle_sha256=FAKE_BUNDLE_SHA256, engine=_FAKE_ENGINE
    )


def _refuse(code: str, msg: str) -> ApprovalDecision:
    return refuse_approval(
        code, msg, bundle_revision=FAKE_BUNDLE_REVISION, bundle_sha256=FAKE_BUNDLE_SHA256, engine=_FAKE_ENGINE
    )


def quorum(required: int, *, groups: Sequence[str] = ()) -> Callable[[ApprovalInput], ApprovalDecision]:
    """An approval rule: `required` distinct approvers, none the requester, each in one of `groups` if given."""
    wanted = set(groups)

    def decide(input: ApprovalInput) -> ApprovalDecision:
        who = input.approver
        if who.id == input.requester.id:
            return _refuse("self_approval", f"{who.id} cannot approve their own proposal")
        if any(p.approver.id == who.id for p in input.approvals):
            return _refuse("duplicate_approver", f"{who.id} has already approved")
        if wanted and not wanted & set(who.roles):
            return _refuse("not_in_group", f"{who.id} is in none of {', '.join(sorted(wanted))}")
        counted = len(input.approvals) + 1
        still = max(0, required - counted)
        return ApprovalDecision(
            counts=True,
            quorum_met=still == 0,
            reasons=[],
            pending=[Reason(code="quorum", msg=f"{still} more approval(s) needed")] if still else [],
            approvals_counted=counted,
            still_needed=still,
            bundle_revision=FAKE_BUNDLE_REVISION,
            bundle_sha256=FAKE_BUNDLE_SHA256,
            engine=_FAKE_ENGINE,
        )

    return decide


class Hold:
    """A door the gate's calls wait at until `release()`; `arrived` is set once a call waits there."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self._open = asyncio.Event()
        self.waiting = 0
        """Calls waiting now."""

    def release(self) -> None:
        """Let every waiting and later call through."""
        self._open.set()

    async def wait(self) -> None:
        """Wait here until released (what a held gate call does)."""
        self.waiting += 1
        self.arrived.set()
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1


SafetyAnswer = SafetyDecision | BaseException | Callable[[SafetyInput], SafetyDecision]
"""A scripted safety answer: a decision, an exception to raise, or a function of the input."""
ApprovalAnswer = ApprovalDecision | BaseException | Callable[[ApprovalInput], ApprovalDecision]
"""A scripted approval answer: a decision, an exception to raise, or a function of the input."""


class _Script(Generic[_I, _D]):
    """Answers per call: one answer for every call, or a sequence taken in order (the last repeats)."""

    def __init__(
        self, script: _D | BaseException | Callable[[_I], _D] | Sequence[_D | BaseException | Callable[[_I], _D]]
    ) -> None:
        self._answers: list[_D | BaseException | Callable[[_I], _D]] = (
            list(script) if isinstance(script, Sequence) else [script]
        )
        if not self._answers:
            raise ValueError("a gate script needs at least one answer")
        self.inputs: list[_I] = []
        self.hold: Hold | None = None

    async def answer(self, input: _I, delay_seconds: float) -> _D:
        self.inputs.append(input)
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        if self.hold is not None:
            await self.hold.wait()
        answer = self._answers[min(len(self.inputs), len(self._answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(input)
        return answer


class FakePolicyGate:
    """Stands in for the Rego gates (the `PolicyGate` port): decisions are scripted, not evaluated.

    `safety` (default `allow()`) and `approval` (default `quorum(1)`) are each a decision, an
    exception, a function of the input, or a sequence of those taken one per call (the last
    repeats): `safety=[allow(), deny(...)]` allows the first evaluation and denies the recheck
    at the moment of action. A scripted exception is raised: the real gates never raise, so
    this tests what a workflow does when an adapter breaks the port's promise. `delay_seconds`
    slows every call; `hold(...)` makes calls wait until released, to test what arrives meanwhile.
    """

    def __init__(
        self,
        safety: SafetyAnswer | Sequence[SafetyAnswer] | None = None,
        approval: ApprovalAnswer | Sequence[ApprovalAnswer] | None = None,
        *,
        delay_seconds: float = 0.0,
    ) -> None:
        self._safety: _Script[SafetyInput, SafetyDecision] = _Script(allow() if safety is None else safety)
        self._approval: _Script[ApprovalInput, ApprovalDecision] = _Script(quorum(1) if approval is None else approval)
        self.delay_seconds = delay_seconds

    @property
    def safety_inputs(self) -> list[SafetyInput]:
        """What the safety policy was asked, in order (the first evaluation, then each recheck)."""
        return self._safety.inputs

    @property
    def approval_inputs(self) -> list[ApprovalInput]:
        """What the approval policy was asked, in order."""
        return self._approval.inputs

    def hold(self, decision: Literal["safety", "approval"]) -> Hold:
        """Hold calls of one kind from now on until the returned `Hold` is released."""
        door = Hold()
        (self._safety if decision == "safety" else self._approval).hold = door
        return door

    async def evaluate_safety(self, input: SafetyInput) -> SafetyDecision:
        """The next scripted safety decision."""
        return await self._safety.answer(input, self.delay_seconds)

    async def evaluate_approval(self, input: ApprovalInput) -> ApprovalDecision:
        """The next scripted approval decision."""
        return await self._approval.answer(input, self.delay_seconds)


# ---- approval inbox --------------------------------------------------------------------------


class FakeApprovalInbox:
    """Stands in for `SqlApprovalInbox` (the `ApprovalInbox` port): the queue as a dict by proposal id."""

    def __init__(self) -> None:
        self.entries: dict[str, InboxEntry] = {}
        self.upserts: list[InboxEntry] = []
        """Every upsert in order, so tests can follow an entry's statuses."""

    async def upsert(self, entry: InboxEntry) -> None:
        """Insert or replace the entry for `entry.proposal_id`."""
        self.entries[entry.proposal_id] = entry
        self.upserts.append(entry)

    def statuses(self, proposal_id: str) -> list[str]:
        """The statuses one proposal's entry went through, repeats collapsed."""
        seen: list[str] = []
        for entry in self.upserts:
            if entry.proposal_id == proposal_id and (not seen or seen[-1] != entry.status.value):
                seen.append(entry.status.value)
        return seen


# ---- actuator --------------------------------------------------------------------------------


@dataclass
class _Failure:
    match: str
    permanent: bool
    times: int | None


class FakeActuator:
    """Stands in for the simulator and webhook actuators (the `Actuator` port): an estate in dicts.

    `replicas` is the replica count per node; scaling an unknown node, or outside `bounds`, is a
    permanent error naming it. Rate limits and traffic ratios are kept in `limits` and `ratios`;
    restarts only counted (they cannot be undone). Idempotent by key like the real ones: a
    repeated key returns the first outcome with `applied=False`, the same key for another
    action is refused as permanent. `fail(...)` makes matching keys fail first.
    """

    def __init__(
        self, replicas: Mapping[str, int] | None = None, *, bounds: Mapping[str, tuple[int, int]] | None = None
    ) -> None:
        self.replicas: dict[str, int] = dict(replicas or {})
        self.bounds: dict[str, tuple[int, int]] = dict(bounds or {})
        self.limits: dict[str, float | None] = {}
        self.ratios: dict[str, dict[str, float]] = {}
        self.restarts: dict[str, int] = {}
        self.attempts: list[str] = []
        """Every key asked for, retries included, in order."""
        self.applied: dict[str, tuple[Action, StepOutcome]] = {}
        self._failures: list[_Failure] = []

    @classmethod
    def of(cls, snapshot: Snapshot) -> FakeActuator:
        """An estate with the snapshot's nodes, replica counts, bounds and edge ratios."""
        actuator = cls(
            {n.id: n.replicas for n in snapshot.nodes},
            bounds={n.id: (n.min_replicas, n.max_replicas) for n in snapshot.nodes},
        )
        for edge in snapshot.edges:
            actuator.ratios.setdefault(edge.source, {})[edge.target] = edge.ratio
        return actuator

    def fail(self, match: str, *, permanent: bool, times: int | None = None) -> None:
        """Fail keys containing `match` (`"/compensate/"`, `"/step/1"`): `times` attempts, or every one."""
        self._failures.append(_Failure(match, permanent, times))

    async def apply(self, idempotency_key: str, action: Action) -> StepOutcome:
        """Apply `action` once per key; return what undoes it."""
        self.attempts.append(idempotency_key)
        for rule in self._failures:
            if rule.match in idempotency_key and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                kind = "refused" if rule.permanent else "could not be reached for"
                raise ActuatorError(f"fake estate {kind} {idempotency_key!r}", permanent=rule.permanent)
        previous = self.applied.get(idempotency_key)
        if previous is not None:
            done, outcome = previous
            if done != action:
                raise ActuatorError(
                    f"idempotency key {idempotency_key!r} was used for '{describe(done)}', not '{describe(action)}'",
                    permanent=True,
                )
            return outcome.model_copy(update={"applied": False, "detail": f"already applied: {outcome.detail}"})
        outcome = StepOutcome(
            idempotency_key=idempotency_key, applied=True, undo=self._change(action), detail=describe(action)
        )
        self.applied[idempotency_key] = (action, outcome)
        return outcome

    def _change(self, action: Action) -> Action | None:
        node = action.source if isinstance(action, ShiftTrafficAction) else action.node
        if node not in self.replicas:
            raise ActuatorError(f"fake estate has no node {node!r}", permanent=True)
        match action:
            case ScaleAction(replicas=wanted):
                low, high = self.bounds.get(node, (0, wanted))
                if not low <= wanted <= high:
                    raise ActuatorError(f"node {node!r}: {wanted} replicas outside [{low}, {high}]", permanent=True)
                before = self.replicas[node]
                self.replicas[node] = wanted
                return ScaleAction(node=node, replicas=before)
            case RateLimitAction(max_rps=cap):
                prior = self.limits.get(node)
                self.limits[node] = cap
                return RateLimitAction(node=node, max_rps=prior)
            case ShiftTrafficAction(ratios=wanted_ratios):
                out = self.ratios.get(node, {})
                unknown = sorted(set(wanted_ratios) - set(out))
                if unknown:
                    raise ActuatorError(f"node {node!r} has no edge to {', '.join(unknown)}", permanent=True)
                prior_ratios = {t: out[t] for t in wanted_ratios}
                out.update(wanted_ratios)
                return ShiftTrafficAction(source=node, ratios=prior_ratios)
            case RestartAction():
                self.restarts[node] = self.restarts.get(node, 0) + 1
                return None
        raise AssertionError(action)


# ---- notifier and twin -----------------------------------------------------------------------


class RecordingNotifier:
    """Stands in for the log, webhook and pager notifiers (the `Notifier` port): remembers what it sent."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def notify(self, notification: Notification) -> None:
        """Record one notification."""
        self.sent.append(notification)

    def kinds(self, remediation_id: str | None = None) -> list[str]:
        """Kinds delivered (for one remediation, if given), in order."""
        return [n.kind.value for n in self.sent if remediation_id is None or n.remediation_id == remediation_id]


class FakeTwinSource:
    """Stands in for the simulator, file and HTTP twin sources (the `TwinSource` port).

    Returns `snapshot`, or raises it when it is a `TwinSourceError` (no fresh twin). With an
    `estate`, it is observed now with the estate's replica counts, so a scale-up verifies;
    without one, the twin never changes and a fix cannot verify. Set `snapshot` to change it.
    """

    def __init__(
        self, snapshot: Snapshot | TwinSourceError | None = None, *, estate: FakeActuator | None = None
    ) -> None:
        self.snapshot: Snapshot | TwinSourceError = (
            TwinSourceError("the fake twin was given no snapshot") if snapshot is None else snapshot
        )
        self.estate = estate
        self.reads = 0

    async def latest(self) -> Snapshot:
        """The given snapshot (with the estate's replicas), or the given error."""
        self.reads += 1
        if isinstance(self.snapshot, TwinSourceError):
            raise self.snapshot
        if self.estate is None:
            return self.snapshot
        replicas = self.estate.replicas
        nodes = [n.model_copy(update={"replicas": replicas.get(n.id, n.replicas)}) for n in self.snapshot.nodes]
        return self.snapshot.model_copy(update={"nodes": nodes, "observed_at": datetime.now(UTC)})


class FakeDemandHistory:
    """The demand-history store (the `DemandHistoryStore` port) over `DemandRecorder`, one per twin.

    Keeps every read (twin, as of, nodes asked) and record (twin, at, demand, kept) for tests.
    """

    def __init__(self) -> None:
        self.recorders: dict[str, DemandRecorder] = {}
        self.reads: list[tuple[str, datetime, tuple[str, ...] | None]] = []
        self.records: list[tuple[str, datetime, dict[str, float], int]] = []

    async def read(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        """What was recorded for the twin (of `nodes`, default all)."""
        self.reads.append((twin_id, now, None if nodes is None else tuple(sorted(nodes))))
        recorder = self.recorders.get(twin_id)
        return recorder.history(nodes) if recorder is not None else DemandHistory()

    async def record(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        """Record with `DemandRecorder`'s semantics (a retry keeps nothing)."""
        kept = self.recorders.setdefault(twin_id, DemandRecorder()).record(observed_at, demand)
        self.records.append((twin_id, observed_at, dict(demand), kept))
        return kept


# ---- playbook run reports --------------------------------------------------------------------


class FakePlaybookRunStore:
    """Stands in for `SqlPlaybookRunStore` (the `PlaybookRunStore` port): reports in a dict by run id.

    Same semantics: a save replaces the report of its run id; newest first by `ended_at`, then
    run id; an unknown id, or no report yet, is a NotFoundError. `saves` keeps every save in order.
    """

    def __init__(self) -> None:
        self.reports: dict[str, PlaybookRunReport] = {}
        self.saves: list[PlaybookRunReport] = []

    async def save(self, report: PlaybookRunReport) -> None:
        """Insert or replace the report of `report.run_id`."""
        self.reports[report.run_id] = report
        self.saves.append(report)

    async def get(self, run_id: str) -> PlaybookRunReport:
        """The report of `run_id`; NotFoundError naming it when there is none."""
        found = self.reports.get(run_id)
        if found is None:
            raise NotFoundError(f"unknown playbook run {run_id!r}: no report was stored under that id")
        return found

    async def latest(self, playbook: str | None = None) -> PlaybookRunReport:
        """The newest report (of `playbook`, when given); NotFoundError when there is none."""
        newest = self._newest(playbook)
        if not newest:
            of = f"of playbook {playbook!r} " if playbook is not None else ""
            raise NotFoundError(f"no playbook run {of}has been reported yet")
        return newest[0]

    async def list(self, playbook: str | None = None, limit: int = 50) -> builtins.list[PlaybookRunReport]:
        """Reports newest first (of `playbook`, when given), at most `limit`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return self._newest(playbook)[:limit]

    def _newest(self, playbook: str | None) -> builtins.list[PlaybookRunReport]:
        found = [r for r in self.reports.values() if playbook is None or r.playbook == playbook]
        return sorted(found, key=lambda r: (r.ended_at, r.run_id), reverse=True)


# ---- wiring ----------------------------------------------------------------------------------


@dataclass
class FakePorts:
    """One fake per port and the approval service's key: what a worker needs, all in memory."""

    twin: FakeTwinSource = field(default_factory=FakeTwinSource)
    ledger: FakeAuditLedger = field(default_factory=FakeAuditLedger)
    gate: FakePolicyGate = field(default_factory=FakePolicyGate)
    inbox: FakeApprovalInbox = field(default_factory=FakeApprovalInbox)
    actuator: FakeActuator = field(default_factory=FakeActuator)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    signer: DecisionSigner = field(default_factory=DecisionSigner.generate)
    """Signs test decisions; its public key goes into `RemediationInput.approval_key`."""
    desires: Desires = field(default_factory=lambda: load_desires(None))
    demand_history: FakeDemandHistory = field(default_factory=FakeDemandHistory)
    playbook_runs: FakePlaybookRunStore = field(default_factory=FakePlaybookRunStore)

    def services(self) -> Services:
        """The fakes as the `Services` the production worker is wired from."""
        return Services(
            ledger=self.ledger,
            gate=self.gate,
            inbox=self.inbox,
            actuator=self.actuator,
            notifier=self.notifier,
            twin=self.twin,
            desires=self.desires,
            signer=self.signer,
            demand_history=self.demand_history,
            playbook_runs=self.playbook_runs,
        )


def fake_worker(client: Client, task_queue: str, ports: FakePorts, **options: Any) -> Worker:
    """A worker for both workflows and every activity over `ports`, wired as production wires it."""
    return build_worker(client, task_queue, ports.services(), **options)
