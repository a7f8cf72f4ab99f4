"""One agent tick: revise beliefs, detect, deliberate over intentions, plan. Pure and deterministic.

`decide(state, snapshot, desires)` is the single entry point a workflow calls per
tick; everything it needs from the previous tick is in `AgentState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agents._frozen import Frozen
from agents.alerts import AlertNote, alert_findings, alerts_sentence, with_alerts
from agents.beliefs import Beliefs, revise
from agents.declined import DeclinedPlan, SuppressedPlan, action_set_hash, ago, finite
from agents.desires import Desires
from agents.detection import CAPACITY_KINDS, Detection, Finding, FindingKind, detect
from agents.forecast import DemandHistory
from agents.intentions import AgentState, DroppedIntention, Intention, achieved, adopt, with_cooldown
from agents.outlook import URGENT_SLACK_SECONDS, with_outlook
from agents.planner import Planner
from agents.proposal import PlanOption, Proposal, plan_nodes
from agents.sizing import replicas_for
from agents.whatif import SteadyStateWhatIf, WhatIf
from twin.actions import ScaleAction
from twin.contract import Node, Snapshot


class Decision(Frozen):
    """The outcome of one tick: the state to carry on, new proposals, intentions let go."""

    new_state: AgentState
    proposals: tuple[Proposal, ...]
    dropped_intentions: tuple[DroppedIntention, ...]
    beliefs: Beliefs
    detection: Detection
    suppressed: tuple[SuppressedPlan, ...] = ()
    """Plans held back this tick because a person rejected or cancelled them, and until when."""


def groups(beliefs: Beliefs, nodes: set[str]) -> list[list[str]]:
    """Partition problem nodes so a node and every problem node upstream of it share a group.

    A constraint and the nodes it hides downstream then get one plan (one step to health).
    """
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    preds: dict[str, list[str]] = {}
    for e in beliefs.snapshot.edges:
        preds.setdefault(e.target, []).append(e.source)
    # Carry, in topological order, the problem ancestors' group root down the graph.
    reach: dict[str, set[str]] = {}
    for n in beliefs.order:
        inherited: set[str] = set()
        for u in preds.get(n, ()):
            inherited |= reach.get(u, set())
        if n in nodes:
            for root in inherited:
                parent[find(root)] = find(n)
            inherited = {find(n)}
        else:
            inherited = {find(r) for r in inherited}
        reach[n] = inherited
    result: dict[str, list[str]] = {}
    for n in beliefs.order:
        if n in nodes:
            result.setdefault(find(n), []).append(n)
    return sorted(result.values(), key=lambda g: beliefs.order.index(g[0]))


def _better(new: Proposal, old_still: PlanOption) -> bool:
    """Whether the fresh plan meets strictly more (by priority) than the committed one would now."""
    new_key = tuple(len(g.violations) for g in new.plan.goals)
    old_key = tuple(len(g.violations) for g in old_still.goals)
    return new_key < old_key


def _replay(intention: Intention, planner: Planner, findings: Sequence[Finding]) -> PlanOption:
    """The committed plan re-evaluated under current beliefs."""
    return planner.judge(findings, intention.actions)


class _Declines:
    """The declines in force this tick: which fresh plans they hold back, and what a re-proposal says."""

    def __init__(self, declined: Sequence[DeclinedPlan], beliefs: Beliefs, desires: Desires) -> None:
        self.beliefs = beliefs
        self.desires = desires
        self.at = beliefs.observed_at
        self.period = desires.suppress_declined_seconds
        # An expired decline is kept for one more period, so a re-proposal can say the period ended.
        self.entries = [d for d in declined if self.at < d.at + 2 * (d.until(self.period) - d.at)]
        self.consumed: set[str] = set()
        self.suppressed: list[SuppressedPlan] = []

    def screen(self, proposal: Proposal) -> Proposal | None:
        """`proposal`, its rationale saying why it is asked again after a decline; None when a decline holds."""
        keys = (proposal.target, proposal.intent, proposal.plan_hash, action_set_hash(proposal.actions))
        hits = sorted((d for d in self.entries if d.matches(*keys)), key=lambda d: d.at, reverse=True)
        if not hits:
            return proposal
        why: list[str] = []
        for d in hits:
            until = d.until(self.period)
            belief = self.beliefs.nodes.get(d.node)
            now = belief.demand_utilization if belief is not None else None
            worse = d.worse(now, self.desires.declined_worse_margin) if now is not None else None
            if self.at >= until:
                why.append(f"the {ago((until - d.at).total_seconds())} suppression period ended")
            elif worse is not None:
                why.append(worse)
            else:
                self.suppressed.append(self._held(proposal, d, until, now))
                return None
        self.consumed.update(d.node for d in hits)
        return proposal.model_copy(
            update={"rationale": f"Proposing again: {hits[0].said(self.at)}; {why[0]}. {proposal.rationale}"}
        )

    def _held(self, proposal: Proposal, d: DeclinedPlan, until: datetime, now: float | None) -> SuppressedPlan:
        then = d.demand_utilization
        level = "" if then is None or now is None else f" (demand {then:.0%} then, {now:.0%} now)"
        return SuppressedPlan(
            node=proposal.target,
            plan_hash=proposal.plan_hash,
            declined_plan_hash=d.plan_hash,
            outcome=d.outcome,
            by=d.by,
            reason=d.reason,
            declined_at=d.at,
            until=until,
            demand_utilization_then=then,
            demand_utilization_now=finite(now),
            detail=(
                f"{proposal.target}: {d.said(self.at)}; not proposed again before {until.isoformat()} "
                f"unless it gets materially worse{level}."
            ),
        )

    def kept(self) -> tuple[DeclinedPlan, ...]:
        """The declines to carry on: neither past their grace nor answered by a re-proposal."""
        return tuple(d for d in self.entries if d.node not in self.consumed)


def _underused(beliefs: Beliefs, node: Node, desires: Desires) -> bool:
    """Whether `node` carries its load on fewer replicas.

    With a forecast: the replicas that carry the upper band's peak over the hold window (readiness
    + the longer of cool-down and `scale_down_hold_seconds`) are fewer than it runs. Without: demand
    under `scale_down_below` and not rising (the hysteresis band).
    """
    b = beliefs.nodes[node.id]
    need = _forecast_need(beliefs, node, desires)
    if need is not None:
        return need < b.replicas and b.demand_slope <= 0
    return b.demand_utilization < desires.scale_down_below and b.demand_slope <= 0


def _forecast_need(beliefs: Beliefs, node: Node, desires: Desires) -> int | None:
    """Replicas that carry the forecast's upper band over the hold window (None without a forecast)."""
    b = beliefs.nodes[node.id]
    if b.forecast is None:
        return None
    return replicas_for(
        b.forecast.hold_rps if b.forecast.hold_rps is not None else b.forecast.planning_rps,
        desires.target_for(node),
        b.capacity_per_replica,
        b.min_replicas,
        b.max_replicas,
        desires.latency_slo_ms.get(node.id),
    )


def _too_deep(intention: Intention, beliefs: Beliefs, node: Node, desires: Desires) -> int | None:
    """The replicas the forecast needs now, when a waiting scale-down would go below them (else None)."""
    need = _forecast_need(beliefs, node, desires)
    to = [a.replicas for a in intention.actions if isinstance(a, ScaleAction) and a.node == node.id]
    return need if need is not None and to and min(to) < need else None


def decide(
    state: AgentState,
    snapshot: Snapshot,
    desires: Desires,
    *,
    history: Sequence[Snapshot] = (),
    now: datetime | None = None,
    whatif: WhatIf | None = None,
    demand_history: DemandHistory | None = None,
    alerts: Sequence[AlertNote] = (),
) -> Decision:
    """One tick of the agent. Deterministic: same state, snapshot and desires give the same decision.

    `now` (the workflow's clock) only feeds the staleness check; time otherwise comes
    from `snapshot.observed_at`. A stale snapshot produces no proposals (no fresh twin,
    no action), but beliefs, findings and reconsideration still run. Plans a person declined
    (`decline` records them in `AgentState.declined`) are held back and listed in
    `Decision.suppressed`; one proposed again says why in its rationale. Firing `alerts` are evidence
    (agents/alerts.py): in the node's belief, as `alert` findings, and in the rationale of a proposal for
    the node; they never make a proposal by themselves.
    """
    whatif = whatif or SteadyStateWhatIf()
    beliefs = with_outlook(revise(state.memory, snapshot, history, desires=desires, now=now), demand_history, desires)
    beliefs = with_alerts(beliefs, alerts)
    detection = detect(beliefs, desires)
    paged = alert_findings(beliefs, alerts)
    if paged:
        detection = detection.model_copy(update={"findings": (*detection.findings, *paged)})
    at = beliefs.observed_at
    by_node: dict[str, list[Finding]] = {}
    for f in detection.findings:
        if f.node is not None and f.kind in (*CAPACITY_KINDS, FindingKind.LATENCY_SLO):
            by_node.setdefault(f.node, []).append(f)

    nodes_by_id = {n.id: n for n in snapshot.nodes}
    cooldown = dict(state.cooldown_until)
    kept: list[Intention] = []
    dropped: list[DroppedIntention] = []
    for intention in state.intentions:
        if achieved(intention, beliefs):
            dropped.append(DroppedIntention(intention=intention, reason="achieved", detail="its plan is in effect"))
            cooldown = with_cooldown(
                state.model_copy(update={"cooldown_until": cooldown}), intention.nodes, at, desires.cooldown_seconds
            )
        elif intention.intent == "remediate" and not any(n in by_node for n in intention.nodes):
            dropped.append(
                DroppedIntention(intention=intention, reason="cleared", detail="its findings cleared on their own")
            )
        elif intention.intent == "scale_down" and (
            not _underused(beliefs, nodes_by_id[intention.target], desires)
            or beliefs.nodes[intention.target].upstream_saturated
        ):
            dropped.append(DroppedIntention(intention=intention, reason="cleared", detail="no longer underused"))
        elif (
            intention.intent == "scale_down"
            and (need := _too_deep(intention, beliefs, nodes_by_id[intention.target], desires)) is not None
        ):
            # The forecast rose since it was planned: executing it would leave the node short.
            dropped.append(
                DroppedIntention(
                    intention=intention,
                    reason="superseded",
                    detail=f"the forecast now needs {need} replicas of {intention.target}; the plan went lower",
                )
            )
        else:
            kept.append(intention)
    working = state.model_copy(update={"cooldown_until": cooldown})

    def cooling(n: str) -> bool:
        return working.cooling(n, at)

    def urgent(n: str, fs: Sequence[Finding]) -> bool:
        """Waiting out the cool-down is worse: saturated, or a forecast crossing capacity must be ordered for now."""
        lead = desires.readiness_for(nodes_by_id[n]) + URGENT_SLACK_SECONDS
        return any(
            f.kind is FindingKind.SATURATED
            or (
                f.kind is FindingKind.PREDICTED
                and beliefs.nodes[n].forecast is not None
                and (f.eta_seconds or 0) <= lead
            )
            for f in fs
        )

    # No fresh twin, no action: a stale snapshot neither proposes nor supersedes anything.
    problems: set[str] = set()
    if not beliefs.stale:
        problems = {n for n, fs in by_node.items() if not cooling(n) or urgent(n, fs)}
    proposals: list[Proposal] = []
    declines = _Declines(state.declined, beliefs, desires)
    planner = Planner(beliefs, desires, whatif)
    for intention in kept:
        planner.reserve(intention.actions)
    for group in groups(beliefs, problems):
        findings = [f for n in group for f in by_node[n]]
        committed = [i for i in kept if any(n in i.nodes for n in group)]
        for c in committed:
            planner.release(c.actions)
        fresh = planner.remediate(findings)
        # Commitment: keep the old plan unless the fresh one does strictly better now.
        keep = fresh is None or (
            len(committed) == 1
            and committed[0].intent == "remediate"
            and not _better(fresh, _replay(committed[0], planner, findings))
        )
        if fresh is not None and not keep:
            # A person's no holds: a declined plan is not asked again for a while (agents/declined.py).
            fresh = declines.screen(fresh)
        if fresh is not None and not keep:
            fresh = _with_pages(fresh, paged)
        if keep or fresh is None:
            for c in committed:
                planner.reserve(c.actions)
            continue
        for c in committed:
            kept.remove(c)
            dropped.append(
                DroppedIntention(intention=c, reason="superseded", detail=f"replaced by proposal {fresh.id}")
            )
        proposals.append(fresh)
        kept.append(adopt(fresh))
        planner.reserve(fresh.actions)

    covered = {n for i in kept for n in i.nodes}
    alerted = {f.node for f in paged}  # paged about: no scale-down there while the alert fires
    if not beliefs.stale:
        for n in beliefs.order:
            b = beliefs.nodes[n]
            if (
                n in covered
                or n in by_node
                or n in alerted
                or cooling(n)
                or b.upstream_saturated
                or b.replicas <= b.min_replicas
                or not _underused(beliefs, nodes_by_id[n], desires)
            ):
                continue
            down = planner.scale_down(n)
            if down is not None:
                down = declines.screen(down)
            if down is not None:
                proposals.append(down)
                kept.append(adopt(down))
    new_state = AgentState(
        memory=beliefs.memory(),
        intentions=tuple(kept),
        cooldown_until=working.cooldown_until,
        declined=declines.kept(),
    )
    return Decision(
        new_state=new_state,
        proposals=tuple(proposals),
        dropped_intentions=tuple(dropped),
        beliefs=beliefs,
        detection=detection,
        suppressed=tuple(declines.suppressed),
    )


def _with_pages(proposal: Proposal, paged: Sequence[Finding]) -> Proposal:
    """`proposal` carrying the alert findings on the nodes it changes, named in its rationale."""
    nodes = {proposal.target, *plan_nodes(proposal.plan)}
    mine = tuple(f for f in paged if f.node in nodes)
    if not mine:
        return proposal
    return proposal.model_copy(
        update={"findings": (*proposal.findings, *mine), "rationale": f"{proposal.rationale} {alerts_sentence(mine)}"}
    )
