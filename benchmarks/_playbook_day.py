"""One playbook over one simulated day: its cron runs, the real safety policy, what it changed, what it cost.

The machinery of `benchmarks/bench_playbooks.py` (its docstring states the method). Two simulators
run in lockstep on the same estate and take the same actions: the scenario's noisy one is what the
playbook sees (its snapshots, beliefs and verification), a noise-free copy is what is counted
(replica-hours of provisioned replicas, node-minutes with the true p95 over the node's SLO, queue
depths), so a difference between two days is the playbook's doing, never measurement noise.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import zoneinfo
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Literal

from agents import Desires, Proposal, load_desires, revise
from agents.forecast import BUCKET_SECONDS, DAY, DemandRecorder
from agents.playbook import Playbook, ScheduleTrigger, expectations_unmet, plan_playbook
from benchmarks.bench_rightsizing import PRIOR_DAYS, READINESS, TICK, Truth
from controller.adapters.policy import make_policy_gate
from controller.core.settings import REPO_ROOT, Settings
from twin.actions import Action, ScaleAction, describe
from twin.contract import NodeKind
from twin.queueing import response_time_p95
from twin.scenario import Scenario
from twin.simulator import Simulator
from workflows.policy import ActionOutcome, ActionRecord, PolicyGate, Requester, SafetyInput, action_node
from workflows.remediation import policy_proposal
from workflows.verification import check_goals

__all__ = [
    "START",
    "VERIFICATION_TOLERANCE",
    "VERIFICATION_WINDOW",
    "Applied",
    "Approvals",
    "Day",
    "Estate",
    "cron_matches",
    "policy_gate",
    "prior_demand",
    "simulate_day",
    "slo_of",
]

START = datetime(2026, 11, 24, tzinfo=UTC)
"""The simulated day: Tuesday 24 November 2026, 00:00 UTC (CET, UTC+1, in Berlin), so MON-FRI crons fire."""
VERIFICATION_WINDOW = 60.0
"""Seconds after an action before the first verification (the settings' `verification_window_seconds`)."""
VERIFICATION_TOLERANCE = 0.05
"""Slack on the plan's goals at verification (`RemediationInput.verification_tolerance`)."""
DESIRES: Desires = load_desires(None)
"""The controller's desires without a desires file: what a playbook run plans and verifies with."""

Approvals = Literal["unattended", "approved_at_once"]
"""unattended: what needs a human parks and is never applied; approved_at_once: a human approves it as it parks."""

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    3: ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    4: ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _field_values(text: str, position: int) -> set[int]:
    low, high = _BOUNDS[position]
    names = _NAMES.get(position, ())

    def number(word: str) -> int:
        return names.index(word.upper()) + low if word.upper() in names else int(word)

    out: set[int] = set()
    for item in text.split(","):
        span, _, step = item.partition("/")
        if span == "*":
            first, last = low, high
        else:
            a, dash, b = span.partition("-")
            first = number(a)
            last = number(b) if dash else (high if step else first)
        out.update(range(first, last + 1, int(step) if step else 1))
    return out


def cron_matches(spec: str, at: datetime) -> bool:
    """Whether a cron expression (the subset `agents.playbook.cron` accepts) fires at the minute `at` (local time)."""
    fields = _MACROS.get(spec.strip().lower(), spec).split()
    minute, hour, dom, month, dow = (_field_values(f, i) for i, f in enumerate(fields))
    weekday = (at.weekday() + 1) % 7  # cron: Sunday is 0 (and 7)
    day_of_week = weekday in dow or (weekday == 0 and 7 in dow)
    # Vixie cron: with both day fields restricted, either one matching is enough.
    both = fields[2] != "*" and fields[4] != "*"
    day = (at.day in dom or day_of_week) if both else (at.day in dom and day_of_week)
    return at.minute in minute and at.hour in hour and at.month in month and day


def slo_of(scenario: Scenario) -> dict[str, float]:
    """Each node's latency SLO (ms): the M/M/c p95 at 90% utilization on the scenario's replicas.

    As bench_rightsizing counts it; give the shipped scenario, so a re-sized estate is held to the same SLOs.
    """
    return {
        n.id: 1000.0 * response_time_p95(n.replicas, 0.9 * n.replicas * n.capacity_per_replica, n.capacity_per_replica)
        for n in scenario.nodes
    }


class _Sampler:
    """Noisy samples of the offered demand, one per tick, stored as one mean per history bucket.

    The store keeps each bucket's mean of what was recorded in it, so recording the mean once when
    the bucket is complete leaves the same history as recording every sample, at a tenth of the
    store's pruning. A plan at a bucket boundary (every cron minute a multiple of 5) sees the same.
    """

    def __init__(self, scenario: Scenario, recorder: DemandRecorder, seed: int) -> None:
        self.truth = Truth(scenario)
        self.noise = scenario.noise
        self.start = scenario.start.timestamp()
        self.recorder = recorder
        self.rng = random.Random(seed)
        self.bucket: int | None = None
        self.sums: dict[str, float] = {}
        self.count = 0

    def sample(self, t: float) -> None:
        """One noisy sample at `t` seconds after the scenario's start (the bucket before it is stored when complete)."""
        at = self.start + t
        k = math.floor(at / BUCKET_SECONDS)
        if self.bucket is not None and k != self.bucket:
            self.flush()
        self.bucket = k
        gauss = self.rng.gauss
        for n, v in self.truth.demand(t).items():
            self.sums[n] = self.sums.get(n, 0.0) + v * max(0.0, 1.0 + self.noise * gauss(0.0, 1.0))
        self.count += 1

    def flush(self) -> None:
        """Store the bucket sampled so far."""
        if self.bucket is not None and self.count:
            self.recorder.record(self.bucket * BUCKET_SECONDS, {n: s / self.count for n, s in self.sums.items()})
        self.sums, self.count = {}, 0


def prior_demand(scenario: Scenario, days: int = PRIOR_DAYS) -> DemandRecorder:
    """The demand store after `days` days in service before t = 0, stored bucket by bucket.

    The same noisy samples (same seed, same ticks) as `benchmarks.bench_rightsizing.prior_history`, the same history.
    """
    recorder = DemandRecorder(BUCKET_SECONDS)
    sampler = _Sampler(scenario, recorder, scenario.seed * 7919 + days)
    t = -days * DAY
    while t < 0:
        sampler.sample(t)
        t += TICK
    sampler.flush()
    return recorder


@dataclass(frozen=True)
class Estate:
    """A simulated day: the scenario (re-based to `START`), the SLOs it is held to, and how it differs from the file."""

    name: str
    source: str
    """The scenario file's stem: estates from one file share their demand (replicas do not change it)."""
    scenario: Scenario
    slo: dict[str, float]
    note: str = "as shipped"


@dataclass
class Applied:
    """One node's proposal a playbook run applied, and how its verification ended."""

    node: str
    at: float
    by: Literal["policy", "human"]
    proposal: Proposal = field(repr=False)
    from_replicas: int | None = None
    """Provisioned replicas before, when the proposal scales its node."""
    to_replicas: int | None = None
    expect: tuple[str, ...] = ()
    within: float = 0.0
    outcome: ActionOutcome = "executed"
    settled_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON figures."""
        up = self.to_replicas is not None and self.from_replicas is not None and self.to_replicas > self.from_replicas
        return {
            "node": self.node,
            "action": "; ".join(map(describe, self.proposal.actions)),
            "from": self.from_replicas,
            "to": self.to_replicas,
            "at": clock(self.at),
            "ready_at": clock(self.at + READINESS) if up else clock(self.at),
            "approved_by": self.by,
            "verification": self.outcome,
            "verify_within_minutes": round(self.within / 60.0, 1),
            "settled_at": clock(self.settled_at) if self.settled_at is not None else None,
        }


@dataclass
class Day:
    """What one simulated day gave: the runs and their outcomes, and the counted figures."""

    runs: list[float] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    parked: list[dict[str, Any]] = field(default_factory=list)
    denied: list[dict[str, Any]] = field(default_factory=list)
    unmet: dict[str, str] = field(default_factory=dict)
    """Per node, why its preconditions did not hold at the first run where they did not."""
    node_hours: dict[str, float] = field(default_factory=dict)
    violations: dict[str, set[int]] = field(default_factory=dict)
    """Per node, the ticks (index) whose true p95 was over the node's SLO."""
    queue_depth: dict[str, list[float]] = field(default_factory=dict)
    """Per queue node, its true depth at the end of every tick."""

    @property
    def replica_hours(self) -> float:
        """Replica-hours of provisioned replicas over the day."""
        return sum(self.node_hours.values())

    def violation_minutes(self, node: str | None = None) -> float:
        """SLO-violation node-minutes (of one node, or all)."""
        ticks = [len(self.violations[node])] if node is not None else [len(v) for v in self.violations.values()]
        return sum(ticks) * TICK / 60.0


def clock(t: float) -> str:
    """Seconds since the day's start as `HH:MM` (UTC)."""
    return (START + timedelta(seconds=t)).strftime("%H:%M")


@asynccontextmanager
async def policy_gate() -> AsyncIterator[PolicyGate]:
    """The real in-process policy (regorus, one engine process) on the shipped bundle without its freeze windows.

    The simulated day is fixed, so a freeze window could only ever cover it by an edit of the example
    calendar in data.json; without them the figures depend on the policy's rules, not on that calendar.
    """
    with TemporaryDirectory(prefix="twinops-bench-policies-") as tmp:
        bundle = Path(tmp) / "policies"
        shutil.copytree(REPO_ROOT / "policies", bundle)
        data_file = bundle / "data.json"
        data = json.loads(data_file.read_text())
        data["twinops"]["config"]["safety"]["freeze_windows"] = []
        data_file.write_text(json.dumps(data))
        gate = make_policy_gate(Settings(policies_dir=bundle, policy_engine_processes=1, opa_url=None))
        try:
            yield gate
        finally:
            close = getattr(gate, "aclose", None)
            if close is not None:
                await close()


class _Run:
    """The day's two simulators, the playbook's schedule, and what its runs did."""

    def __init__(
        self,
        estate: Estate,
        playbook: Playbook | None,
        gate: PolicyGate | None,
        history: DemandRecorder | None,
        approvals: Approvals,
    ) -> None:
        sc = estate.scenario
        self.estate = estate
        self.playbook = playbook
        self.gate = gate
        self.history = history
        self.approvals = approvals
        self.counted = Simulator(sc.model_copy(update={"noise": 0.0}), readiness_seconds=READINESS)
        self.seen = Simulator(sc, seed=sc.seed, readiness_seconds=READINESS)
        self.sampler = _Sampler(sc, history, sc.seed * 7919 + 1) if history is not None else None
        self.schedules = (
            [(t.cron, zoneinfo.ZoneInfo(t.timezone)) for t in playbook.triggers if isinstance(t, ScheduleTrigger)]
            if playbook is not None
            else []
        )
        self.records: list[ActionRecord] = []
        self.pending: list[Applied] = []
        self.day = Day()
        queues = [n.id for n in sc.nodes if n.kind == NodeKind.QUEUE]
        self.day.node_hours = {n.id: 0.0 for n in sc.nodes}
        self.day.violations = {n.id: set() for n in sc.nodes}
        self.day.queue_depth = {q: [] for q in queues}

    def fires(self, t: float) -> bool:
        if t % 60.0 > 1e-6:
            return False
        at = START + timedelta(seconds=t)
        return any(cron_matches(spec, at.astimezone(zone)) for spec, zone in self.schedules)

    def apply(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self.counted.apply(action)
            self.seen.apply(action)

    async def run_playbook(self, t: float) -> None:
        assert self.playbook is not None and self.gate is not None and self.history is not None
        playbook = self.playbook
        self.day.runs.append(t)
        snap = self.seen.snapshot()
        beliefs = revise(None, snap, desires=DESIRES, now=snap.observed_at)
        plan = plan_playbook(playbook, beliefs, desires=DESIRES, history=self.history.history(), now=snap.observed_at)
        for node in plan.nodes:
            if node.proposal is None:
                self.day.unmet.setdefault(node.node, node.reason)
                continue
            p = node.proposal
            decision = await self.gate.evaluate_safety(
                SafetyInput(
                    proposal=policy_proposal(p),
                    snapshot_age_seconds=0.0,
                    history=list(self.records),
                    now=snap.observed_at,
                    requester=Requester(kind="playbook", id=playbook.name),
                )
            )
            planned = [s for s in node.steps if s.action is not None]
            entry: dict[str, Any] = {"node": node.node, "at": clock(t), "action": "; ".join(map(describe, p.actions))}
            if not decision.allow:
                self.day.denied.append(entry | {"codes": [r.code for r in decision.deny]})
                continue
            always = any(s.approval == "always" for s in planned)
            if not decision.auto_approve or always:
                why = "approval: always" if always else f"the policy asks for approval (risk {decision.risk})"
                self.day.parked.append(
                    entry
                    | {
                        "why": why,
                        "required_approvals": max(1, decision.required_approvals),
                        "groups": list(decision.approver_groups),
                    }
                )
                if self.approvals == "unattended":
                    continue
            self.act(t, p, [s.index for s in planned], "human" if always or not decision.auto_approve else "policy")

    def act(self, t: float, p: Proposal, steps: Sequence[int], by: Literal["policy", "human"]) -> None:
        assert self.playbook is not None
        chosen = [self.playbook.steps[i] for i in steps]
        scale = next((a for a in p.actions if isinstance(a, ScaleAction) and a.node == p.target), None)
        applied = Applied(
            node=p.target,
            at=t,
            by=by,
            proposal=p,
            from_replicas=self.counted.provisioned()[p.target] if scale is not None else None,
            to_replicas=scale.replicas if scale is not None else None,
            expect=tuple(s.verify.expect.source for s in chosen),
            within=max(s.verify.within for s in chosen),
        )
        self.day.applied.append(applied)
        self.pending.append(applied)
        at = START + timedelta(seconds=t)
        self.records += [
            ActionRecord(at=at, node=action_node(a), action_type=a.type, plan_hash=p.plan_hash, outcome="executed")
            for a in p.actions
        ]
        self.apply(p.actions)

    def verify(self, t: float) -> None:
        """Settle the verifications due: met (goals and `verify.expect`) at a check, or undone when `within` ran out."""
        due = [a for a in self.pending if t >= a.at + VERIFICATION_WINDOW - 1e-6]
        if not due:
            return
        snap = self.seen.snapshot()
        beliefs = revise(None, snap, now=snap.observed_at)
        for a in due:
            verdict = check_goals(a.proposal, snap, VERIFICATION_TOLERANCE, dict(DESIRES.latency_slo_ms))
            met = verdict.met and not verdict.worse and not expectations_unmet(beliefs, a.node, a.expect)
            if not met and t < a.at + a.within - 1e-6:
                continue
            a.outcome, a.settled_at = ("verified" if met else "rolled_back"), t
            self.pending.remove(a)
            if not met:
                self.apply(a.proposal.compensations)
            self.records = [
                r.model_copy(update={"outcome": a.outcome}) if r.plan_hash == a.proposal.plan_hash else r
                for r in self.records
            ]

    def account(self, tick: int) -> None:
        snap = self.counted.snapshot()
        provisioned = self.counted.provisioned()
        for n in snap.nodes:
            self.day.node_hours[n.id] += provisioned[n.id] * TICK / 3600.0
            p95 = n.metrics.latency_p95_ms
            if p95 is not None and p95 > self.estate.slo[n.id]:
                self.day.violations[n.id].add(tick)
            if n.id in self.day.queue_depth:
                self.day.queue_depth[n.id].append(n.metrics.queue_depth or 0.0)


async def simulate_day(
    estate: Estate,
    playbook: Playbook | None = None,
    *,
    gate: PolicyGate | None = None,
    history: DemandRecorder | None = None,
    approvals: Approvals = "unattended",
) -> Day:
    """The estate's day with `playbook` run at its schedule's times (None: the baseline, nothing runs).

    `history` is the demand store before the day (mutated: the day's demand is recorded into it).
    """
    if playbook is not None and (gate is None or history is None):
        raise ValueError("a playbook's day needs the policy gate and a demand history")
    run = _Run(estate, playbook, gate, history, approvals)
    ticks = math.ceil((estate.scenario.duration or 86400.0) / TICK - 1e-9)
    for tick in range(ticks):
        t = tick * TICK
        if run.sampler is not None:
            run.sampler.sample(t)
        if playbook is not None:
            run.verify(t)
            if run.fires(t):
                await run.run_playbook(t)
        run.counted.step(TICK)
        run.seen.step(TICK)
        run.account(tick)
    return run.day
