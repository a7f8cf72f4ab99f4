"""The planner: candidate plans from the library, evaluated with the what-if engine, ranked.

Ranking: goals met (lexicographically by goal priority, fewer violations first),
then cost per hour, then risk (blast radius). The first candidate is always the
cheapest scale-only plan, `clamp(ceil(D / (target x mu)), min, max)` for every node
over target in the affected subgraph, so hidden downstream nodes are fixed in the
same step as the constraint. Demand is projected `horizon_seconds` ahead along
rising trends, so a predicted crossing is covered before its eta.

No action rests on a belief the agent is unsure of (`NodeBelief.trusted`: missing external
load, metrics contradicting the graph, or demand flowing from such a node): a group holding
one gets no plan, a step never touches one, and such a node is never scaled down.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from agents.beliefs import Beliefs
from agents.desires import Desires, GoalKind
from agents.detection import CAPACITY_KINDS, Finding
from agents.library import alternatives_for, rate_limit_step, restart_step, scale_step, shift_step
from agents.proposal import (
    Alternative,
    ContextBuilder,
    GoalResult,
    NodeOutcome,
    PlanOption,
    PlanStep,
    Proposal,
    plan_hash,
    proposal_id,
)
from agents.sizing import carried, replicas_for
from agents.whatif import Prediction, SteadyStateWhatIf, WhatIf
from twin.actions import Action, ScaleAction, ShiftTrafficAction, describe
from twin.contract import Snapshot

EPS = 1e-9


def projected_snapshot(beliefs: Beliefs, seconds: float) -> Snapshot:
    """The snapshot at the believed external load, moved `seconds` along each rising trend; an entry
    with a forecast is at its upper band's peak over the planning window instead (never under now, nor
    under its rising trend over that window)."""
    nodes = []
    for n in beliefs.snapshot.nodes:
        b = beliefs.nodes[n.id]
        if b.forecast is not None and b.forecast.external_rps is not None:
            # The forecast, or a significant rising trend over the same window if that says more: the
            # level correction lags an unforecast ramp by half an hour.
            trend = b.external_rate + max(0.0, b.external_slope) * b.forecast.window_seconds
            rate = max(b.external_rate, b.forecast.external_rps, trend)
        else:
            rate = b.external_rate + max(0.0, b.external_slope) * max(0.0, seconds)
        nodes.append(
            n if rate == (n.external_arrival_rate or 0.0) else n.model_copy(update={"external_arrival_rate": rate})
        )
    return beliefs.snapshot.model_copy(update={"nodes": nodes})


def _children(snapshot: Snapshot) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in snapshot.edges:
        out.setdefault(e.source, []).append(e.target)
    return out


def _descendants(snapshot: Snapshot, roots: Iterable[str], out: Mapping[str, list[str]] | None = None) -> set[str]:
    out = _children(snapshot) if out is None else out
    seen = set(roots)
    stack = list(seen)
    while stack:
        for t in out.get(stack.pop(), ()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return seen


def needed_replicas(demand: float, target: float, mu: float, lo: int, hi: int) -> int:
    """Fewest replicas that carry `demand` at or under `target`, clamped to [lo, hi]."""
    # 1e-9 keeps an exact fit from rounding up through float noise (as twin.graph.optimal_replicas).
    need = math.ceil(demand / (target * mu) - EPS) if demand > 0 else 0
    return max(lo, min(hi, need))


class _Context:
    """Everything one planning call shares: beliefs, desires, projected load, the what-if engine."""

    def __init__(self, beliefs: Beliefs, desires: Desires, whatif: WhatIf, lookahead: float) -> None:
        self.beliefs = beliefs
        self.desires = desires
        self.whatif = whatif
        self.lookahead = lookahead
        self.snapshot = projected_snapshot(beliefs, lookahead)
        self.nodes = {n.id: n for n in beliefs.snapshot.nodes}
        self.reserved: dict[str, int] = {}
        self.children = _children(beliefs.snapshot)
        self.target = {n.id: desires.target_for(n) for n in beliefs.snapshot.nodes}
        self.base = whatif.predict(self.snapshot, [], lookahead)
        self.context = ContextBuilder(beliefs)

    def predict(self, actions: Sequence[Action]) -> Prediction:
        """The what-if for `actions` at the projected load."""
        if isinstance(self.whatif, SteadyStateWhatIf) and all(isinstance(a, ScaleAction) for a in actions):
            # Scaling changes no node's demand in the steady state, only capacities: patch the base
            # prediction instead of re-propagating the whole graph (most candidates are scale-only).
            replicas = dict(self.base.replicas)
            capacity = dict(self.base.capacity)
            for a in actions:
                if isinstance(a, ScaleAction):
                    replicas[a.node] = a.replicas
                    capacity[a.node] = a.replicas * self.nodes[a.node].capacity_per_replica
            return self.base.model_copy(update={"replicas": replicas, "capacity": capacity})
        return self.whatif.predict(self.snapshot, actions, self.lookahead)

    def trusted(self, node: str) -> bool:
        """Whether an action on `node` may rest on what is believed about it."""
        return self.beliefs.nodes[node].trusted

    def cost(self, node: str) -> float:
        return self.desires.replica_cost(self.nodes[node])

    def replicas_for(self, n: str, demand: float) -> int:
        """Fewest replicas of `n` that carry `demand` within its target and latency SLO (agents/sizing.py)."""
        node = self.nodes[n]
        return replicas_for(
            demand,
            self.target[n],
            node.capacity_per_replica,
            node.min_replicas,
            node.max_replicas,
            self.desires.latency_slo_ms.get(n),
        )

    def short(self, pred: Prediction, nodes: Iterable[str]) -> list[str]:
        """Nodes whose admitted load exceeds what their replicas carry (target, and latency SLO where set)."""
        out = []
        for n in nodes:
            mu = self.nodes[n].capacity_per_replica
            bound = carried(pred.replicas[n], mu, self.target[n], self.desires.latency_slo_ms.get(n))
            if pred.admitted[n] > bound + EPS * max(1.0, bound):
                out.append(n)
        return out

    def over_target(self, pred: Prediction, nodes: Iterable[str]) -> list[str]:
        return [n for n in nodes if pred.utilization(n) > self.target[n] + EPS]

    def allocate(self, wanted: Mapping[str, int]) -> dict[str, int]:
        """Grant scale-ups in order of urgency within the total and per-team replica budgets."""
        budget = self.desires.budget
        team_tag = self.desires.team_tag
        total = 0
        teams: dict[str, int] = {}
        for node in self.nodes.values():
            # Replicas already promised to other plans count against the budget; the nodes being
            # planned now count at what they run.
            held = node.replicas if node.id in wanted else max(node.replicas, self.reserved.get(node.id, 0))
            total += held
            team = node.tags.get(team_tag)
            if team is not None:
                teams[team] = teams.get(team, 0) + held
        granted: dict[str, int] = {}
        urgency = sorted(wanted, key=lambda n: (-self.base.utilization(n), n))
        for n in urgency:
            cur = self.nodes[n].replicas
            extra = wanted[n] - cur
            if extra > 0:
                team = self.nodes[n].tags.get(team_tag)
                room = [extra]
                if budget.total_replicas is not None:
                    room.append(budget.total_replicas - total)
                if team is not None and team in budget.per_team:
                    room.append(budget.per_team[team] - teams.get(team, 0))
                extra = max(0, min(room))
                total += extra
                if team is not None:
                    teams[team] = teams.get(team, 0) + extra
            granted[n] = cur + extra
        return granted

    def scale_steps(self, replicas: Mapping[str, int]) -> list[PlanStep]:
        steps = []
        for n in self.beliefs.order:
            if n in replicas and self.trusted(n):
                step = scale_step(self.beliefs.nodes[n], replicas[n], self.desires, self.cost(n))
                if step is not None:
                    steps.append(step)
        return steps

    def shed_steps(self, pred: Prediction, scope: Collection[str]) -> list[PlanStep]:
        """Rate limits at entry nodes so every node of `scope` fits its target at `pred`'s capacities."""
        ratio = {
            n: min(1.0, self.target[n] * pred.capacity[n] / pred.admitted[n]) if pred.admitted[n] > 0 else 1.0
            for n in scope
        }
        out: dict[str, list[str]] = {}
        for e in self.snapshot.edges:
            out.setdefault(e.source, []).append(e.target)
        factor: dict[str, float] = {}
        for n in reversed(self.beliefs.order):
            factor[n] = min([ratio.get(n, 1.0), *(factor[c] for c in out.get(n, ()))])
        steps = []
        for n in self.beliefs.order:
            if (
                pred.demand[n] > 0
                and self.beliefs.nodes[n].external_rate > 0
                and factor[n] < 1.0 - EPS
                and self.trusted(n)
            ):
                limit = math.floor(factor[n] * pred.demand[n] * 1000) / 1000
                belief = self.beliefs.nodes[n].model_copy(update={"demand": pred.demand[n]})
                step = rate_limit_step(belief, limit, self.desires)
                if step is not None:
                    steps.append(step)
        return steps

    def shift_steps(self, pred: Prediction, scope: Collection[str]) -> list[PlanStep]:
        """Move traffic from over-target nodes to pool siblings with spare capacity."""
        steps = []
        for v in self.over_target(pred, scope):
            for source, alt in alternatives_for(self.snapshot, v):
                if not (self.trusted(source) and self.trusted(v) and self.trusted(alt)):
                    continue
                excess = pred.admitted[v] - self.target[v] * pred.capacity[v]
                spare = self.target[alt] * pred.capacity[alt] - pred.admitted[alt]
                through = pred.admitted[source]
                ratios = {e.target: e.ratio for e in self.snapshot.edges if e.source == source}
                if excess <= 0 or spare <= 0 or through <= 0:
                    continue
                delta = min(excess, spare) / through
                delta = min(delta, ratios[v])
                step = shift_step(self.snapshot, self.beliefs, source, {v: ratios[v] - delta, alt: ratios[alt] + delta})
                if step is not None:
                    steps.append(step)
                    break
        return steps

    def evaluate(self, name: str, summary: str, steps: Sequence[PlanStep], scope: Collection[str]) -> PlanOption:
        actions = [s.action for s in steps]
        pred = self.predict(actions)
        touched = {_touched(a) for a in actions}
        shifted = {t for a in actions if isinstance(a, ShiftTrafficAction) for t in a.ratios}
        judged = set(scope) | _descendants(self.snapshot, touched | shifted, self.children)
        ordered = [n for n in self.beliefs.order if n in judged]
        goals = []
        for goal in self.desires.ranked_goals():
            violations: list[str] = []
            if goal is GoalKind.NO_SATURATION:
                violations = [
                    f"{n} saturated at {pred.utilization(n):.0%}" for n in ordered if pred.utilization(n) >= 1.0
                ]
            elif goal is GoalKind.QUEUE_NOT_GROWING:
                if not self.desires.queue_not_growing:
                    continue
                for n in ordered:
                    queue = pred.queue_depth.get(n)
                    seen = self.beliefs.nodes[n].observed.queue_depth or 0.0
                    if queue is not None and queue > max(1.0, seen):
                        violations.append(f"{n} queue grows {seen:.0f} -> {queue:.0f}")
                    elif queue is None and pred.utilization(n) >= 1.0:
                        # Steady state has no queues: admitted load at or over capacity means it grows.
                        violations.append(f"{n} queue grows (admitted load at {pred.utilization(n):.0%})")
            elif goal is GoalKind.TARGET_UTILIZATION:
                violations = [
                    f"{n} at {pred.utilization(n):.0%} > target {self.target[n]:.0%}" + self._why_capped(n, pred)
                    for n in self.over_target(pred, ordered)
                ]
            elif goal is GoalKind.SERVE_ALL_DEMAND:
                if pred.shed_rps > EPS:
                    violations = [f"{pred.shed_rps:.0f} rps shed at the entry"]
            elif goal is GoalKind.LATENCY_SLO:
                for n in ordered:
                    slo = self.desires.latency_slo_ms.get(n)
                    if slo is None:
                        continue
                    p95 = pred.latency_p95_ms.get(n)
                    if p95 is not None and p95 > slo:
                        violations.append(f"{n} p95 {p95:.0f} ms > SLO {slo:.0f} ms")
                    elif p95 is None and pred.utilization(n) > self.target[n] + EPS:
                        violations.append(f"{n} over target, p95 SLO {slo:.0f} ms at risk")
            goals.append(GoalResult(goal=goal, met=not violations, violations=tuple(violations)))
        # Affected: what the plan touches, whatever it changes, whatever it leaves over target.
        affected = [
            n
            for n in ordered
            if n in touched
            or abs(pred.utilization(n) - self.base.utilization(n)) > EPS
            or pred.utilization(n) > self.target[n] + EPS
        ]
        predicted = {
            n: NodeOutcome(
                node=n,
                replicas_before=self.nodes[n].replicas,
                replicas_after=pred.replicas[n],
                utilization_before=self.beliefs.nodes[n].demand_utilization,
                utilization_after=pred.utilization(n),
                target_utilization=self.target[n],
                demand_rps=pred.demand[n],
                shed_rps=max(0.0, pred.demand[n] - pred.admitted[n]),
            )
            for n in affected
        }
        return PlanOption(
            name=name,
            summary=summary if steps else "no action",
            steps=tuple(steps),
            predicted=predicted,
            goals=tuple(goals),
            cost_per_hour=sum(s.cost_per_hour for s in steps),
            risk=max((s.blast_radius for s in steps), default=0.0),
            plan_hash=plan_hash(actions),
        )

    def _why_capped(self, n: str, pred: Prediction) -> str:
        node = self.nodes[n]
        if pred.replicas[n] >= node.max_replicas:
            return f" (max_replicas {node.max_replicas} reached)"
        return " (replica budget exhausted)" if pred.replicas[n] > node.replicas else ""


def _touched(action: Action) -> str:
    return action.source if isinstance(action, ShiftTrafficAction) else action.node


def _rank_key(option: PlanOption) -> tuple[tuple[int, ...], float, float, str]:
    return (tuple(len(g.violations) for g in option.goals), round(option.cost_per_hour, 9), option.risk, option.name)


def _lost_because(alt: PlanOption, chosen: PlanOption) -> str:
    for mine, theirs in zip(alt.goals, chosen.goals, strict=True):
        if len(mine.violations) > len(theirs.violations):
            return f"{mine.goal.value} not met: " + "; ".join(mine.violations[:3])
    if alt.cost_per_hour > chosen.cost_per_hour + EPS:
        return f"costs {alt.cost_per_hour:.1f}/h vs {chosen.cost_per_hour:.1f}/h for the same goals"
    if alt.risk > chosen.risk + EPS:
        return f"touches a node with a larger blast radius ({alt.risk:.0%} vs {chosen.risk:.0%})"
    return "equivalent; tie broken by name"


def _summary(steps: Sequence[PlanStep]) -> str:
    return "; ".join(s.description for s in steps)


def _candidates(ctx: _Context, group: Sequence[str], scope: Sequence[str]) -> list[PlanOption]:
    wanted = {n: ctx.replicas_for(n, ctx.base.admitted[n]) for n in ctx.short(ctx.base, scope)}
    wanted = {n: r for n, r in wanted.items() if r > ctx.nodes[n].replicas}
    granted = ctx.allocate(wanted)
    options: list[PlanOption] = []
    scale = ctx.scale_steps(granted)
    if scale:
        options.append(ctx.evaluate("scale", _summary(scale), scale, scope))
        head = granted[max(granted, key=lambda n: (ctx.base.utilization(n), n))]
        lead = max(granted, key=lambda n: (ctx.base.utilization(n), n))
        if len(scale) > 1:
            alone = ctx.scale_steps({lead: head})
            if alone:
                options.append(ctx.evaluate("scale_constraint_only", _summary(alone), alone, scope))
        roomy = ctx.allocate({n: min(ctx.nodes[n].max_replicas, r + 1) for n, r in granted.items()})
        if roomy != granted:
            steps = ctx.scale_steps(roomy)
            options.append(ctx.evaluate("scale_with_headroom", _summary(steps), steps, scope))
    after_scale = options[0] if options else ctx.evaluate("none", "", [], scope)
    feasible = all(g.met for g in after_scale.goals if g.goal in (GoalKind.TARGET_UTILIZATION, GoalKind.NO_SATURATION))
    shed_only = ctx.shed_steps(ctx.base, scope)
    if shed_only:
        options.append(ctx.evaluate("shed", _summary(shed_only), shed_only, scope))
    if not feasible:
        scaled = ctx.predict(after_scale.actions)
        shed = ctx.shed_steps(scaled, scope)
        if shed and scale:
            steps = [*scale, *shed]
            options.append(ctx.evaluate("scale_and_shed", _summary(steps), steps, scope))
        shift = ctx.shift_steps(scaled, scope)
        if shift:
            steps = [*scale, *shift]
            options.append(ctx.evaluate("scale_and_shift", _summary(steps), steps, scope))
            shifted = ctx.predict([s.action for s in steps])
            rest = ctx.shed_steps(shifted, scope)
            if rest:
                steps = [*steps, *rest]
                options.append(ctx.evaluate("scale_shift_and_shed", _summary(steps), steps, scope))
    for n in group:
        restart = restart_step(ctx.beliefs.nodes[n]) if ctx.trusted(n) else None
        if restart is not None:
            options.append(ctx.evaluate(f"restart_{n}", restart.description, [restart], scope))
    return options


def _rationale(
    ctx: _Context, target: str, group: Sequence[str], chosen: PlanOption, alternatives: Sequence[Alternative]
) -> str:
    b = ctx.beliefs.nodes[target]
    state = (
        "is saturated"
        if b.demand_utilization >= 1
        else "is over target"
        if b.demand_utilization > ctx.target[target]
        else "is heading over target"
    )
    slo = ctx.desires.latency_slo_ms.get(target)
    if state == "is heading over target" and b.forecast is not None and slo is not None:
        bound = carried(b.replicas, b.capacity_per_replica, ctx.target[target], slo)
        if bound < ctx.target[target] * b.capacity - EPS:
            state = (
                f"is heading over what {b.replicas} replicas carry within its {slo:.0f} ms p95 SLO ({bound:,.0f} rps)"
            )
    parts = [f"{target} {state}: demand {b.demand:.0f} rps at {b.demand_utilization:.0%} of capacity."]
    hidden = [n for n in group if n != target and ctx.beliefs.nodes[n].throttled]
    if hidden:
        shown = ", ".join(f"{n} ({ctx.beliefs.nodes[n].demand_utilization:.0%})" for n in hidden[:3])
        parts.append(f"Hidden behind it: {shown}; fixed in the same step.")
    outlook = b.forecast
    if outlook is not None:
        parts.append(
            f"Forecast: {outlook.sentence()}; sized for its upper band ({outlook.planning_rps:,.0f} rps) "
            f"over the next {outlook.window_seconds / 60:.0f} min (readiness + cool-down)."
        )
    elif ctx.lookahead > 0 and any(ctx.beliefs.nodes[n].demand_slope > 0 for n in group):
        parts.append(f"Sized for the load projected {ctx.lookahead / 60:.0f} min ahead.")
    unmet = chosen.unmet
    outcome = "everything lands at or under target" if not unmet else "still unmet: " + "; ".join(unmet[:2])
    parts.append(f"Plan: {chosen.summary} ({chosen.cost_per_hour:+.1f}/h); {outcome}.")
    if alternatives:
        parts.append(f"Rejected {alternatives[0].option.name}: {alternatives[0].lost_because}.")
    return " ".join(parts)


def _scale_down_rationale(ctx: _Context, target: str, chosen: PlanOption) -> str:
    b = ctx.beliefs.nodes[target]
    outlook = b.forecast
    plan = f"Plan: {chosen.summary} ({chosen.cost_per_hour:+.1f}/h)."
    if outlook is None:
        return (
            f"{target} runs at {b.demand_utilization:.0%} of capacity, under the "
            f"{ctx.desires.scale_down_below:.0%} scale-down threshold. {plan}"
        )
    hold = outlook.hold_rps if outlook.hold_rps is not None else outlook.planning_rps
    slo_ms = ctx.desires.latency_slo_ms.get(target)
    slo = "" if slo_ms is None else f" and its {slo_ms:.0f} ms p95 SLO"
    seconds = outlook.hold_seconds if outlook.hold_seconds is not None else outlook.window_seconds
    return (
        f"{target} runs at {b.demand_utilization:.0%} of capacity and the forecast's upper band stays at or under "
        f"{hold:,.0f} rps over the next {seconds / 60:.0f} min: {outlook.sentence()}. "
        f"Fewer replicas carry it within the {ctx.target[target]:.0%} target{slo}. {plan}"
    )


def _proposal(
    ctx: _Context,
    target: str,
    intent: Literal["remediate", "scale_down"],
    findings: Sequence[Finding],
    group: Sequence[str],
    options: Sequence[PlanOption],
) -> Proposal:
    ranked = sorted(options, key=_rank_key)
    chosen = ranked[0]
    alternatives = tuple(Alternative(option=o, lost_because=_lost_because(o, chosen)) for o in ranked[1:])
    wanted = set(group) | set(chosen.predicted)
    used = [n for n in ctx.beliefs.order if n in wanted]
    return Proposal(
        id=proposal_id(ctx.beliefs.twin_id, target, chosen.plan_hash),
        twin_id=ctx.beliefs.twin_id,
        target=target,
        intent=intent,
        observed_at=ctx.beliefs.observed_at,
        findings=tuple(findings),
        beliefs_used=tuple(ctx.beliefs.nodes[n] for n in used),
        plan=chosen,
        alternatives=alternatives,
        unmet=chosen.unmet,
        rationale=_rationale(ctx, target, group, chosen, alternatives)
        if intent == "remediate"
        else _scale_down_rationale(ctx, target, chosen),
        blast_radius=chosen.risk,
        plan_hash=chosen.plan_hash,
        actions=chosen.actions,
        compensations=tuple(s.compensation for s in reversed(chosen.steps) if s.compensation is not None),
        context=ctx.context.build(findings, chosen, ctx.target[target]),
    )


class Planner:
    """Plans for one set of beliefs and desires; reuse it for every group of one tick.

    Building it projects the load and runs the base what-if once; each plan then only
    evaluates its own candidates.
    """

    def __init__(self, beliefs: Beliefs, desires: Desires, whatif: WhatIf | None = None) -> None:
        self.beliefs = beliefs
        self.desires = desires
        self._ctx = _Context(
            beliefs, desires, whatif or SteadyStateWhatIf(), desires.horizon_seconds + desires.plan_margin_seconds
        )

    def reserve(self, actions: Sequence[Action]) -> None:
        """Count the scale-ups of a plan already chosen (or committed) against the budget of later plans."""
        for a in actions:
            if isinstance(a, ScaleAction):
                self._ctx.reserved[a.node] = a.replicas

    def release(self, actions: Sequence[Action]) -> None:
        """Undo `reserve` for a plan that is being reconsidered."""
        for a in actions:
            if isinstance(a, ScaleAction) and self._ctx.reserved.get(a.node) == a.replicas:
                del self._ctx.reserved[a.node]

    def untrusted(self, nodes: Iterable[str]) -> list[str]:
        """The nodes among `nodes` whose beliefs are too unsure to act on (see `NodeBelief.trusted`)."""
        return [n for n in nodes if not self.beliefs.nodes[n].trusted]

    def _scope(self, nodes: Iterable[str]) -> tuple[list[str], list[str]]:
        wanted = set(nodes)
        group = [n for n in self.beliefs.order if n in wanted]
        below = _descendants(self.beliefs.snapshot, group, self._ctx.children)
        return group, [n for n in self.beliefs.order if n in below]

    def remediate(self, findings: Sequence[Finding]) -> Proposal | None:
        """The best plan for the findings given (one group: a constraint and what it hides); see `plan`."""
        nodes = {f.node for f in findings if f.node is not None}
        if not nodes:
            return None
        group, scope = self._scope(nodes)
        if self.untrusted(group):
            return None  # a plan sized from unknown or contradicted load could make things worse
        if not any(f.kind in CAPACITY_KINDS for f in findings) and not any(
            restart_step(self.beliefs.nodes[n]) for n in group
        ):
            return None
        position = {n: i for i, n in enumerate(group)}
        target = max(group, key=lambda n: (self.beliefs.nodes[n].demand_utilization, -position[n]))
        options = _candidates(self._ctx, group, scope)
        if not options:
            return None
        return _proposal(self._ctx, target, "remediate", findings, group, options)

    def scale_down(self, node: str) -> Proposal | None:
        """Scale an underused node down to land near `scale_down_to`; the agent calls it through `decide`."""
        b = self.beliefs.nodes[node]
        if not b.trusted:
            return None  # fails closed: a load gap read as idle once scaled a busy node 5 -> 2
        ctx = self._ctx
        if b.forecast is not None:
            # Down to what carries the forecast's upper band through readiness + cool-down, at the target.
            hold = b.forecast.hold_rps if b.forecast.hold_rps is not None else b.forecast.planning_rps
            demand = max(ctx.base.demand[node], hold)
            to = ctx.replicas_for(node, demand)
        else:
            demand = ctx.base.admitted[node]
            to = needed_replicas(
                demand, self.desires.scale_down_to, b.capacity_per_replica, b.min_replicas, b.max_replicas
            )
        if to >= b.replicas:
            return None
        steps = ctx.scale_steps({node: to})
        if not steps:
            return None
        option = ctx.evaluate("scale_down", _summary(steps), steps, [node])
        return _proposal(ctx, node, "scale_down", (), [node], [option])

    def judge(self, findings: Sequence[Finding], actions: Sequence[Action], name: str = "committed") -> PlanOption:
        """Judge given actions (e.g. a committed plan) against the goals; used to replay a committed intention."""
        ctx = self._ctx
        _, scope = self._scope(f.node for f in findings if f.node is not None)
        steps = [
            PlanStep(
                action=a,
                compensation=None,
                description=describe(a),
                cost_per_hour=(a.replicas - self.beliefs.nodes[a.node].replicas) * ctx.cost(a.node)
                if isinstance(a, ScaleAction)
                else 0.0,
                blast_radius=self.beliefs.nodes[_touched(a)].blast_radius,
            )
            for a in actions
            if _touched(a) in self.beliefs.nodes
        ]
        return ctx.evaluate(name, _summary(steps), steps, scope)


def plan(
    beliefs: Beliefs,
    desires: Desires,
    findings: Sequence[Finding],
    *,
    whatif: WhatIf | None = None,
) -> Proposal | None:
    """The best plan for the capacity findings given (one group: a constraint and what it hides).

    Returns None when no candidate exists (nothing to fix, or no lever: unscalable nodes
    without an entry to shed at). Alternatives keep their predicted outcomes and why they lost.
    """
    return Planner(beliefs, desires, whatif).remediate(findings)
