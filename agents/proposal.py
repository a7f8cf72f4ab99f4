"""The Proposal: what the agent hands to policy, approvers, executors and auditors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import AwareDatetime

from agents._frozen import Frozen
from agents.beliefs import RHO_CAP, Beliefs, NodeBelief
from agents.desires import GoalKind
from agents.detection import Finding
from twin.actions import Action, ShiftTrafficAction
from twin.contract import NodeKind
from twin.graph import propagate


class PlanStep(Frozen):
    """One action of a plan with its compensation, cost and risk."""

    action: Action
    compensation: Action | None
    """The action that undoes this one; None when it cannot be undone (restart)."""
    description: str
    cost_per_hour: float
    blast_radius: float
    """Share of external traffic that passes through the node the step touches."""
    preconditions: tuple[str, ...] = ()
    """Preconditions checked when the step was generated, as sentences."""


class NodeOutcome(Frozen):
    """Predicted before/after of one affected node."""

    node: str
    replicas_before: int
    replicas_after: int
    utilization_before: float
    utilization_after: float
    target_utilization: float
    demand_rps: float
    shed_rps: float = 0.0


class GoalResult(Frozen):
    """Whether a plan meets one goal in the what-if, and where it falls short."""

    goal: GoalKind
    met: bool
    violations: tuple[str, ...] = ()


class PlanOption(Frozen):
    """A candidate plan evaluated with the what-if engine."""

    name: str
    summary: str
    steps: tuple[PlanStep, ...]
    predicted: dict[str, NodeOutcome]
    goals: tuple[GoalResult, ...]
    cost_per_hour: float
    risk: float
    plan_hash: str

    @property
    def actions(self) -> tuple[Action, ...]:
        """The plan's actions in execution order."""
        return tuple(s.action for s in self.steps)

    @property
    def unmet(self) -> tuple[str, ...]:
        """Every goal violation left by this plan, as sentences."""
        return tuple(v for g in self.goals if not g.met for v in g.violations)


class Alternative(Frozen):
    """A plan that was considered and not chosen, and why."""

    option: PlanOption
    lost_because: str


HISTORY_POINTS = 60
"""Most utilization points kept per node: the context travels in workflow history, and a
sparkline needs no more (the trend window holds 20 samples today)."""

MAX_NEIGHBOURS = 40
"""Most neighbours of the plan's and the findings' nodes shown: a hub next to a saturated
node could otherwise carry thousands of them into the workflow's history."""

UTILIZATION_DIGITS = 4
"""Decimal places kept of a history point: a sparkline needs no more, and the history stays small."""


class ContextNode(Frozen):
    """One node of the affected part of the graph, as the approval UI draws it."""

    id: str
    kind: NodeKind
    demand_utilization: float
    """Believed offered demand over capacity now (may exceed 1)."""
    replicas: int
    constraint: bool = False
    """The beliefs' constraint: the node with the highest demand utilization in the twin."""
    hidden: bool = False
    """A finding says its own metrics hide its demand behind a saturated upstream node."""


class ContextEdge(Frozen):
    """An edge between two context nodes: requests sent to `target` per request completed at `source`."""

    source: str
    target: str
    ratio: float


HistoryPoint = tuple[AwareDatetime, float | None]
"""(sample time, demand utilization at today's capacity); None where the sample lacks load it depends on."""


class ProposalContext(Frozen):
    """What an approver needs to see where the proposal acts: the affected subgraph and its recent load.

    Serialises (JSON mode) to the shape the approval API promises: nodes, edges, history as
    `{node: [[iso_time, utilization | null], ...]}` and the target's utilization goal.
    """

    nodes: tuple[ContextNode, ...]
    edges: tuple[ContextEdge, ...]
    history: dict[str, tuple[HistoryPoint, ...]]
    """Per node, demand utilization over the trend window, oldest first; a gap is None, never zero."""
    target_utilization: float
    """The utilization goal of the proposal's target node."""


class Proposal(Frozen):
    """One proposed remediation: evidence, the chosen plan, rejected alternatives, rationale."""

    id: str
    """Stable: hash of twin id + target node + plan hash; the same plan for the same problem keeps its id."""
    twin_id: str
    target: str
    """The node the plan is for (the constraint of its group)."""
    intent: Literal["remediate", "scale_down"]
    observed_at: AwareDatetime
    findings: tuple[Finding, ...]
    beliefs_used: tuple[NodeBelief, ...]
    plan: PlanOption
    alternatives: tuple[Alternative, ...]
    unmet: tuple[str, ...]
    rationale: str
    blast_radius: float
    plan_hash: str
    actions: tuple[Action, ...]
    compensations: tuple[Action, ...]
    """Compensations in the order they must run (reverse of the actions)."""
    context: ProposalContext | None = None
    """The affected part of the graph and its recent load, for approvers; None in proposals made
    before it existed (a workflow input recorded by release 0.2.0 still validates)."""


def plan_hash(actions: Sequence[Action]) -> str:
    """Stable hash of a plan's actions (canonical JSON, order kept: order is part of the plan)."""
    body = json.dumps([a.model_dump(mode="json") for a in actions], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def proposal_id(twin_id: str, target: str, plan_hash_: str) -> str:
    """Stable proposal id: the same plan for the same target of the same twin always gets the same id."""
    return "p-" + hashlib.sha256(f"{twin_id}\x1f{target}\x1f{plan_hash_}".encode()).hexdigest()[:20]


def plan_nodes(plan: PlanOption) -> set[str]:
    """Every node a plan changes or predicts an outcome for."""
    nodes = set(plan.predicted)
    for a in plan.actions:
        if isinstance(a, ShiftTrafficAction):
            nodes.add(a.source)
            nodes.update(a.ratios)
        else:
            nodes.add(a.node)
    return nodes


class ContextBuilder:
    """Builds the `ProposalContext` of each proposal made from one set of beliefs.

    The graph's adjacency is indexed once, and the utilization history of every node is
    computed once, when first needed (one pass through the graph per sample), so a tick
    with many proposals pays for it once, not per proposal. Pure: no I/O, no clock.
    """

    def __init__(self, beliefs: Beliefs) -> None:
        self.beliefs = beliefs
        self._preds: dict[str, list[str]] = {n: [] for n in beliefs.order}
        self._edges: dict[str, list[tuple[str, float]]] = {n: [] for n in beliefs.order}
        """Every edge by source, ratio-0 ones too: the UI draws the graph as the snapshot has it."""
        self._out: dict[str, list[tuple[str, float]]] = {n: [] for n in beliefs.order}
        """The edges that carry load (ratio > 0), as belief revision counts them."""
        for e in beliefs.snapshot.edges:
            self._preds[e.target].append(e.source)
            self._edges[e.source].append((e.target, e.ratio))
            if e.ratio > 0:
                self._out[e.source].append((e.target, e.ratio))
        self._position = {n: i for i, n in enumerate(beliefs.order)}
        self._history: dict[str, tuple[HistoryPoint, ...]] | None = None

    def history(self) -> dict[str, tuple[HistoryPoint, ...]]:
        """Demand utilization of every node per sample of the trend window (the last `HISTORY_POINTS`).

        Demand is pushed through the graph from each sample's external load as belief revision
        does (`twin.graph.propagate`), over the capacity of now. A sample that lacks an entry
        node's load leaves that node and everything its load reaches as None: a gap, not zero.
        """
        if self._history is None:
            b = self.beliefs
            order = list(b.order)
            capacity = {n: b.nodes[n].capacity for n in order}
            points: dict[str, list[HistoryPoint]] = {n: [] for n in order}
            for sample in b.window[-HISTORY_POINTS:]:
                flow = propagate(order, {n: sample.rate(n) for n in order}, self._out, capacity)
                unknown = self._reached(n for n in sample.missing if n in capacity)
                for n in order:
                    rho = None if n in unknown else round(min(flow.utilization(n), RHO_CAP), UTILIZATION_DIGITS)
                    points[n].append((sample.at, rho))
            self._history = {n: tuple(p) for n, p in points.items()}
        return self._history

    def _reached(self, roots: Iterable[str]) -> set[str]:
        """`roots` and every node their load reaches through edges that carry load."""
        seen = set(roots)
        stack = list(seen)
        while stack:
            for t, _ in self._out[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return seen

    def build(self, findings: Sequence[Finding], plan: PlanOption, target_utilization: float) -> ProposalContext:
        """The plan's nodes, the findings' nodes and their neighbours, with the edges among them and their history.

        Neighbours (one edge away, either direction) come most utilized first, at most
        `MAX_NEIGHBOURS`; the plan's and the findings' nodes are all kept (the proposal's
        beliefs already hold at least as many).
        """
        b = self.beliefs
        core = {n for n in plan_nodes(plan) | {f.node for f in findings if f.node} if n in b.nodes}
        near = {m for n in core for m in (*self._preds[n], *(t for t, _ in self._edges[n]))} - core
        ranked = sorted(near, key=lambda n: (-b.nodes[n].demand_utilization, self._position[n]))
        chosen = core | set(ranked[:MAX_NEIGHBOURS])
        ordered = sorted(chosen, key=self._position.__getitem__)
        hidden = {f.node for f in findings if f.hidden}
        history = self.history()
        return ProposalContext(
            nodes=tuple(
                ContextNode(
                    id=n,
                    kind=b.nodes[n].kind,
                    demand_utilization=b.nodes[n].demand_utilization,
                    replicas=b.nodes[n].replicas,
                    constraint=n == b.constraint,
                    hidden=n in hidden,
                )
                for n in ordered
            ),
            edges=tuple(
                ContextEdge(source=n, target=t, ratio=r) for n in ordered for t, r in self._edges[n] if t in chosen
            ),
            history={n: history[n] for n in ordered},
            target_utilization=target_utilization,
        )


def proposal_context(
    beliefs: Beliefs, findings: Sequence[Finding], plan: PlanOption, target_utilization: float
) -> ProposalContext:
    """The `ProposalContext` of one proposal (see `ContextBuilder`; the planner shares one builder per tick)."""
    return ContextBuilder(beliefs).build(findings, plan, target_utilization)
