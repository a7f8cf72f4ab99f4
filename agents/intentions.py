"""Intentions: what the agent has committed to, and the rules that keep it from flapping.

- Commitment: an intention is kept while its plan still meets every goal the best
  new plan would meet; it is replaced (superseded) only when beliefs changed enough
  that another plan does strictly better, and dropped when its findings clear.
- One intention per node: nodes already covered are never proposed twice.
- Cool-down per node after an action (saturation overrides it: waiting is worse).
- Hysteresis: scale up at the target, scale down only under `scale_down_below`, and
  then to `scale_down_to`, inside the band, so noise around either edge cannot flip it.
- No scale-down while any upstream node is saturated (its demand is not yet visible).
- A declined plan holds: `decline` remembers what a person rejected or cancelled, and
  `decide` does not propose it again for a while (see agents/declined.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, Field

from agents._frozen import Frozen
from agents.beliefs import Beliefs, Memory
from agents.declined import DeclinedPlan, DeclineOutcome, action_set_hash, finite
from agents.proposal import Proposal
from twin.actions import Action, ScaleAction


class Intention(Frozen):
    """A committed plan for a group of nodes, adopted from a proposal."""

    id: str
    """The id of the proposal it was adopted from."""
    target: str
    intent: Literal["remediate", "scale_down"]
    nodes: tuple[str, ...]
    """Every node this intention covers (its group and the nodes its plan touches)."""
    plan_hash: str
    actions: tuple[Action, ...]
    adopted_at: AwareDatetime
    demand_utilization: float | None = None
    """The target's demand utilization when the plan was proposed (the belief that justified it)."""


class DroppedIntention(Frozen):
    """An intention the agent let go of, and why."""

    intention: Intention
    reason: Literal["cleared", "achieved", "superseded", "settled"]
    detail: str


class AgentState(Frozen):
    """Everything an agent carries from one tick to the next (JSON-serializable, for continue-as-new)."""

    memory: Memory | None = None
    """What the next belief revision needs (trend window); the full beliefs stay out of the state."""
    intentions: tuple[Intention, ...] = ()
    cooldown_until: dict[str, AwareDatetime] = Field(default_factory=dict)
    declined: tuple[DeclinedPlan, ...] = ()
    """Plans people rejected or cancelled, at most one per target node (the latest)."""

    def covering(self, node: str) -> Intention | None:
        """The intention that covers `node`, if any."""
        return next((i for i in self.intentions if node in i.nodes), None)

    def cooling(self, node: str, at: datetime) -> bool:
        """Whether `node` is still in its cool-down at `at`."""
        until = self.cooldown_until.get(node)
        return until is not None and at < until


def adopt(proposal: Proposal) -> Intention:
    """The intention that commits to `proposal`."""
    touched = {a.source if a.type == "shift_traffic" else a.node for a in proposal.actions}
    covered = {proposal.target, *touched, *(f.node for f in proposal.findings if f.node is not None)}
    target = next((b for b in proposal.beliefs_used if b.node == proposal.target), None)
    return Intention(
        id=proposal.id,
        target=proposal.target,
        intent=proposal.intent,
        nodes=tuple(sorted(covered)),
        plan_hash=proposal.plan_hash,
        actions=proposal.actions,
        adopted_at=proposal.observed_at,
        demand_utilization=finite(target.demand_utilization) if target is not None else None,
    )


def achieved(intention: Intention, beliefs: Beliefs) -> bool:
    """Whether every scale step of the intention is visible in the snapshot (it has been executed)."""
    scales = [a for a in intention.actions if isinstance(a, ScaleAction)]
    if not scales or len(scales) != len(intention.actions):
        return False
    return all(a.node in beliefs.nodes and beliefs.nodes[a.node].replicas == a.replicas for a in scales)


def with_cooldown(state: AgentState, nodes: tuple[str, ...], at: datetime, seconds: float) -> dict[str, datetime]:
    """Cool-down map with `nodes` cooling for `seconds` from `at`."""
    until = at + timedelta(seconds=seconds)
    merged: dict[str, datetime] = dict(state.cooldown_until)
    for n in nodes:
        merged[n] = max(until, merged.get(n, until))
    # Forget finished cool-downs so the state does not grow without bound.
    return {n: t for n, t in merged.items() if t > at}


def settle(state: AgentState, intention_id: str, at: datetime, cooldown_seconds: float) -> AgentState:
    """The workflow reports an intention executed (or rolled back): drop it and cool its nodes down."""
    done = [i for i in state.intentions if i.id == intention_id]
    if not done:
        return state
    return state.model_copy(
        update={
            "intentions": tuple(i for i in state.intentions if i.id != intention_id),
            "cooldown_until": with_cooldown(state, done[0].nodes, at, cooldown_seconds),
        }
    )


def decline(
    state: AgentState,
    *,
    node: str,
    plan_hash: str,
    outcome: DeclineOutcome,
    at: datetime,
    reason: str = "",
    by: str | None = None,
    nodes: Sequence[str] = (),
    actions: Sequence[Action] = (),
    demand_utilization: float | None = None,
    seconds: float | None = None,
) -> AgentState:
    """A person rejected or cancelled the plan `plan_hash` for `node`: drop its intention and remember the no.

    What is not given is taken from the intention being dropped (nodes, actions, intent,
    the target's demand utilization when it was proposed). `seconds` None uses the
    desires' `suppress_declined_seconds`. The newest decline for a node replaces older ones.
    No cool-down is added: nothing was executed.
    """
    mine = [i for i in state.intentions if i.target == node and i.plan_hash == plan_hash]
    intention = mine[0] if mine else None
    if intention is not None:
        nodes = nodes or intention.nodes
        actions = actions or intention.actions
        if demand_utilization is None:
            demand_utilization = intention.demand_utilization
    entry = DeclinedPlan(
        node=node,
        plan_hash=plan_hash,
        intent=intention.intent if intention is not None else "remediate",
        nodes=tuple(sorted({node, *nodes})),
        action_set=action_set_hash(actions) if actions else None,
        outcome=outcome,
        by=by,
        reason=reason,
        at=at,
        seconds=seconds,
        demand_utilization=finite(demand_utilization),
    )
    return state.model_copy(
        update={
            "intentions": tuple(i for i in state.intentions if i not in mine),
            "declined": (*(d for d in state.declined if d.node != node), entry),
        }
    )
