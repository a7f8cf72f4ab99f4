"""A playbook planned over one set of beliefs: on which nodes it would act, with which actions, and why. Pure.

For each node the target selects (in the beliefs' topological order), the preconditions are
evaluated over its beliefs; a held condition (`EXPR for 2h`) must also have held on every bucket
of the demand history over that time (a missing bucket is unknown, so it is not shown to hold).
Where they all hold, each step's parameters become a concrete twin action; a value outside the
node's bounds is refused (never clamped) and a step that changes nothing is skipped. The node's
actions become one `Proposal`, judged against the goals like any other plan. Nothing here reads a
clock, a file or a database: the caller passes the beliefs, the demand history and `now`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime

from agents._frozen import Frozen
from agents.beliefs import Beliefs, NodeBelief
from agents.desires import Desires
from agents.forecast import DemandHistory
from agents.outlook import peak_upper_through_graph
from agents.planner import Planner
from agents.playbook.errors import EvaluationError
from agents.playbook.expr import Function, evaluate
from agents.playbook.model import (
    Amount,
    ApprovalMode,
    Check,
    Playbook,
    RateLimitStep,
    RestartStep,
    ScaleStep,
    ShiftTrafficStep,
    Step,
)
from agents.playbook.vocabulary import MATH_FUNCTIONS, belief_values, node_functions
from agents.proposal import ContextBuilder, Proposal, proposal_id
from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction, describe

__all__ = [
    "NodePlan",
    "PlaybookPlan",
    "PreconditionResult",
    "SkippedNode",
    "StepPlan",
    "expectations_unmet",
    "plan_playbook",
    "step_name",
]

StepStatus = Literal["planned", "refused", "skipped"]


class PreconditionResult(Frozen):
    """One precondition on one node: its text, its value now, and whether it is met."""

    source: str
    met: bool
    value: float | bool | None = None
    """The expression's value over the beliefs now; None when it has none (see `detail`)."""
    hold_seconds: float = 0.0
    detail: str = ""
    """Why it is not met, or how a held condition was shown to hold."""


class StepPlan(Frozen):
    """One step on one node: the action it would take and its undoing, or why it takes none."""

    index: int
    name: str
    action_type: str
    approval: ApprovalMode
    status: StepStatus
    action: Action | None = None
    compensation: Action | None = None
    """What undoes the action (`compensation: inverse`); None with `compensation: none` or no action."""
    reason: str = ""
    """Why the step was refused or skipped."""


class NodePlan(Frozen):
    """What the playbook would do on one matching node."""

    node: str
    preconditions: tuple[PreconditionResult, ...]
    met: bool
    """Whether every precondition holds."""
    steps: tuple[StepPlan, ...] = ()
    """Each step, evaluated when the preconditions hold (empty otherwise)."""
    proposal: Proposal | None = None
    reason: str = ""
    """Why there is no proposal."""


class SkippedNode(Frozen):
    """A matching node the playbook does not plan for, and why."""

    node: str
    reason: str


class PlaybookPlan(Frozen):
    """A playbook planned over one set of beliefs."""

    playbook: str
    version: int
    twin_id: str
    observed_at: AwareDatetime
    now: AwareDatetime
    nodes: tuple[NodePlan, ...]
    skipped: tuple[SkippedNode, ...] = ()

    @property
    def proposals(self) -> tuple[Proposal, ...]:
        """Every node's proposal, in the nodes' order."""
        return tuple(n.proposal for n in self.nodes if n.proposal is not None)


def step_name(step: Step, index: int) -> str:
    """The step's name in reports: its own, or `steps[i]`."""
    return step.name or f"steps[{index}]"


def _span(seconds: float) -> str:
    """A length of time as a playbook writes it, spaced: `90 s`, `10 m`, `2 h`, `24 h`, `7 d` (whole units if exact)."""
    for unit, size, least in (("d", 86400, 2), ("h", 3600, 1), ("m", 60, 1)):
        count = seconds / size
        # A day is written in hours (`24h`, as playbooks do) until it is two or more whole days.
        if count >= least and count == int(count):
            return f"{int(count)} {unit}"
    return f"{seconds:g} s"


def _fmt(value: float | bool | None) -> str:
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return f"{value:.4g}"


def _held(
    check: Check, belief: NodeBelief, history: DemandHistory | None, now: datetime, value: float | bool | None
) -> PreconditionResult:
    """Whether `check` held now and on every demand-history bucket of the last `hold_seconds`."""
    hold = check.hold_seconds
    span = _span(hold)
    out = PreconditionResult(source=check.source, met=False, value=value, hold_seconds=hold)
    if value is not True:
        return out.model_copy(update={"detail": f"does not hold now (it must hold for {span})"})
    if history is None:
        return out.model_copy(update={"detail": f"no demand history: cannot show it held for {span}"})
    if belief.capacity <= 0:
        return out.model_copy(update={"detail": f"{belief.node} has no capacity to compute past utilization"})
    size = history.bucket_seconds
    t = now.timestamp()
    first, last = math.floor((t - hold) / size + 1e-9), math.ceil(t / size - 1e-9) - 1
    recorded = {round(start / size): rps for start, rps in history.of(belief.node)}
    fixed = {
        "capacity": belief.capacity,
        "capacity_per_replica": belief.capacity_per_replica,
        "min_replicas": float(belief.min_replicas),
        "max_replicas": float(belief.max_replicas),
    }
    buckets = range(first, last + 1)
    missing = [k for k in buckets if k not in recorded]
    if missing:
        return out.model_copy(
            update={
                "detail": f"not shown to hold: {len(missing)} of {len(buckets)} buckets of the last {span} "
                f"missing from the demand history (first at {_at(missing[0] * size)})"
            }
        )
    for k in buckets:
        demand = recorded[k]
        names = fixed | {"demand": demand, "demand_utilization": demand / belief.capacity}
        try:
            held = evaluate(check.expr, names, MATH_FUNCTIONS)
        except EvaluationError as exc:
            return out.model_copy(update={"detail": f"at {_at(k * size)}: {exc}"})
        if held is not True:
            return out.model_copy(
                update={"detail": f"did not hold at {_at(k * size)} (demand {demand:.4g} rps; it must hold for {span})"}
            )
    return out.model_copy(update={"met": True, "detail": f"held in all {len(buckets)} buckets of the last {span}"})


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _precondition(
    check: Check,
    belief: NodeBelief,
    names: Mapping[str, float],
    functions: Mapping[str, Function],
    history: DemandHistory | None,
    now: datetime,
) -> PreconditionResult:
    try:
        value = evaluate(check.expr, names, functions)
    except EvaluationError as exc:
        return PreconditionResult(source=check.source, met=False, hold_seconds=check.hold_seconds, detail=str(exc))
    if check.hold_seconds > 0:
        return _held(check, belief, history, now, value)
    return PreconditionResult(source=check.source, met=value is True, value=value)


def _amount(amount: Amount, names: Mapping[str, float], functions: Mapping[str, Function]) -> float:
    if amount.formula is None:
        assert amount.literal is not None
        return amount.literal
    value = evaluate(amount.formula.expr, names, functions)
    assert not isinstance(value, bool)  # parsing checked it is a number
    return value


def _step(
    index: int,
    step: Step,
    belief: NodeBelief,
    beliefs: Beliefs,
    names: Mapping[str, float],
    functions: Mapping[str, Function],
) -> StepPlan:
    node = belief.node
    base = StepPlan(
        index=index, name=step_name(step, index), action_type=step.action, approval=step.approval, status="planned"
    )

    def refused(reason: str) -> StepPlan:
        return base.model_copy(update={"status": "refused", "reason": reason})

    def skipped(reason: str) -> StepPlan:
        return base.model_copy(update={"status": "skipped", "reason": reason})

    action: Action
    compensation: Action | None
    try:
        match step:
            case ScaleStep(params=params):
                value = _amount(params.replicas, names, functions)
                if abs(value - round(value)) > 1e-9:
                    return refused(f"replicas computed as {value:.4g}, not a whole number (use ceil, floor or round)")
                replicas = round(value)
                if not belief.min_replicas <= replicas <= belief.max_replicas:
                    return refused(
                        f"replicas computed as {replicas}, outside {node}'s bounds "
                        f"{belief.min_replicas}..{belief.max_replicas} (refused, not clamped)"
                    )
                if replicas == belief.replicas:
                    return skipped(f"{node} already runs {replicas} replicas: nothing to change")
                action = ScaleAction(node=node, replicas=replicas)
                compensation = ScaleAction(node=node, replicas=belief.replicas)
            case RateLimitStep(params=params):
                cap = None if params.max_rps is None else _amount(params.max_rps, names, functions)
                if cap is not None and cap < 0:
                    return refused(f"max_rps computed as {cap:.4g}, less than 0")
                action = RateLimitAction(node=node, max_rps=cap)
                # The twin does not report a current cap: undoing one removes it (as the plan library does).
                compensation = RateLimitAction(node=node, max_rps=None)
            case ShiftTrafficStep(params=params):
                current = {e.target: e.ratio for e in beliefs.snapshot.edges if e.source == node}
                ratios: dict[str, float] = {}
                for target, amount in params.ratios.items():
                    if target not in current:
                        return refused(f"{node} has no edge to {target!r}")
                    ratio = _amount(amount, names, functions)
                    if ratio < 0:
                        return refused(f"ratio to {target} computed as {ratio:.4g}, less than 0")
                    ratios[target] = ratio
                if all(abs(ratios[t] - current[t]) <= 1e-12 for t in ratios):
                    return skipped(f"{node}'s ratios are already {', '.join(f'{t}={current[t]:g}' for t in ratios)}")
                action = ShiftTrafficAction(source=node, ratios=ratios)
                compensation = ShiftTrafficAction(source=node, ratios={t: current[t] for t in ratios})
            case RestartStep():
                action = RestartAction(node=node)
                compensation = None
            case _:  # pragma: no cover - the model admits no other step
                raise AssertionError(step)
    except EvaluationError as exc:
        return refused(f"cannot compute its parameters: {exc}")
    if step.compensation == "none":
        compensation = None
    return base.model_copy(update={"action": action, "compensation": compensation})


class _Peaks:
    """Forecast peaks through the graph, computed once per horizon asked."""

    def __init__(self, beliefs: Beliefs, history: DemandHistory) -> None:
        self.beliefs = beliefs
        self.history = history
        self._by_horizon: dict[float, dict[str, float]] = {}

    def of(self, node: str) -> Callable[[float], float]:
        def peak(seconds: float) -> float:
            if seconds not in self._by_horizon:
                self._by_horizon[seconds] = peak_upper_through_graph(self.beliefs, self.history, seconds)
            peaks = self._by_horizon[seconds]
            if node not in peaks:
                raise EvaluationError(f"no seasonal demand forecast reaches {node!r} over the next {_span(seconds)}")
            return peaks[node]

        return peak


def _rationale(playbook: Playbook, node: str, steps: Sequence[StepPlan], pre: Sequence[PreconditionResult]) -> str:
    ran = "; ".join(f"{s.name}: {describe(s.action)}" for s in steps if s.action is not None)
    checked = "; ".join(
        f"{p.source} ({p.detail})" if p.hold_seconds > 0 else f"{p.source} (= {_fmt(p.value)})" for p in pre
    )
    text = f"Playbook {playbook.name} v{playbook.version} on {node}: {ran}."
    return text + (f" Preconditions met: {checked}." if checked else " No preconditions.")


def plan_playbook(
    playbook: Playbook,
    beliefs: Beliefs,
    *,
    desires: Desires,
    history: DemandHistory | None,
    now: datetime,
) -> PlaybookPlan:
    """Plan `playbook` over `beliefs` (see the module's docstring); deterministic for the same inputs."""
    planner = Planner(beliefs, desires)
    contexts = ContextBuilder(beliefs)
    peaks = _Peaks(beliefs, history) if history is not None else None
    nodes: list[NodePlan] = []
    skipped: list[SkippedNode] = []
    affected = 0
    for n in beliefs.order:
        b = beliefs.nodes[n]
        if not playbook.target.selects(n, b.kind, b.tags):
            continue
        if beliefs.stale:
            skipped.append(
                SkippedNode(node=n, reason="the beliefs are stale: the twin's snapshot is too old to act on")
            )
            continue
        if not b.trusted:
            skipped.append(
                SkippedNode(
                    node=n,
                    reason=f"beliefs about {n} rest on missing or contradictory data "
                    f"(confidence {b.confidence:.2f}): no action",
                )
            )
            continue
        names = belief_values(b)
        functions = node_functions(b, peaks.of(n) if peaks is not None else None)
        pre = tuple(_precondition(c, b, names, functions, history, now) for c in playbook.preconditions)
        if not all(p.met for p in pre):
            unmet = "; ".join(p.source + (f": {p.detail}" if p.detail else "") for p in pre if not p.met)
            nodes.append(NodePlan(node=n, preconditions=pre, met=False, reason=f"preconditions not met: {unmet}"))
            continue
        steps = tuple(_step(i, s, b, beliefs, names, functions) for i, s in enumerate(playbook.steps))
        refused = [s for s in steps if s.status == "refused"]
        planned = [s for s in steps if s.action is not None]
        reason = ""
        if refused:
            reason = f"{refused[0].name} was refused ({refused[0].reason}): nothing runs on {n}"
        elif not planned:
            reason = "no step changes anything"
        elif affected >= playbook.limits.max_nodes:
            skipped.append(SkippedNode(node=n, reason=f"over max_nodes: the run already changes {affected} nodes"))
            continue
        if reason:
            nodes.append(NodePlan(node=n, preconditions=pre, met=True, steps=steps, reason=reason))
            continue
        affected += 1
        nodes.append(
            NodePlan(
                node=n,
                preconditions=pre,
                met=True,
                steps=steps,
                proposal=_proposal(playbook, beliefs, desires, planner, contexts, b, planned, pre),
            )
        )
    return PlaybookPlan(
        playbook=playbook.name,
        version=playbook.version,
        twin_id=beliefs.twin_id,
        observed_at=beliefs.observed_at,
        now=now,
        nodes=tuple(nodes),
        skipped=tuple(skipped),
    )


def _proposal(
    playbook: Playbook,
    beliefs: Beliefs,
    desires: Desires,
    planner: Planner,
    contexts: ContextBuilder,
    belief: NodeBelief,
    planned: Sequence[StepPlan],
    pre: Sequence[PreconditionResult],
) -> Proposal:
    n = belief.node
    actions = [s.action for s in planned if s.action is not None]
    judged = planner.judge((), actions, name=f"playbook:{playbook.name}")
    sentences = tuple(p.source for p in pre)
    option = judged.model_copy(
        update={
            "steps": tuple(
                step.model_copy(update={"compensation": s.compensation, "preconditions": sentences})
                for step, s in zip(judged.steps, planned, strict=True)
            )
        }
    )
    scale_down = all(isinstance(a, ScaleAction) and a.replicas < belief.replicas for a in actions)
    wanted = {n} | set(option.predicted)
    return Proposal(
        id=proposal_id(beliefs.twin_id, n, option.plan_hash),
        twin_id=beliefs.twin_id,
        target=n,
        intent="scale_down" if scale_down else "remediate",
        observed_at=beliefs.observed_at,
        findings=(),
        beliefs_used=tuple(beliefs.nodes[m] for m in beliefs.order if m in wanted),
        plan=option,
        alternatives=(),
        unmet=option.unmet,
        rationale=_rationale(playbook, n, planned, pre),
        blast_radius=option.risk,
        plan_hash=option.plan_hash,
        actions=option.actions,
        compensations=tuple(s.compensation for s in reversed(option.steps) if s.compensation is not None),
        context=contexts.build((), option, desires.target_for(beliefs.snapshot.node(n))),
    )


def expectations_unmet(beliefs: Beliefs, node: str, expectations: Sequence[str]) -> list[str]:
    """What a playbook step's `verify.expect` conditions say of `node` now: one finding per condition not met.

    A condition that cannot be evaluated (no trusted figure, a forecast with no history) is not met:
    verification fails closed. Conditions come from a loaded playbook, so they parse; a held
    condition (`for 2h`) is judged on its value now, as a verification looks at one moment.
    """
    belief = beliefs.nodes.get(node)
    if belief is None:
        return [f"node {node!r} is missing from the snapshot: its playbook checks cannot be verified"]
    if not belief.trusted:
        return [f"beliefs about {node} rest on missing or contradictory data: its playbook checks cannot be verified"]
    names, functions = belief_values(belief), node_functions(belief)
    findings: list[str] = []
    for source in expectations:
        check = Check.parse(source)
        try:
            value = evaluate(check.expr, names, functions)
        except EvaluationError as exc:
            findings.append(f"playbook check {source!r} on {node}: cannot be evaluated ({exc})")
            continue
        if value is not True:
            findings.append(f"playbook check {source!r} on {node}: not met")
    return findings
