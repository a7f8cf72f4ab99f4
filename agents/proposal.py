"""The Proposal: what the agent hands to policy, approvers, executors and auditors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Literal

from pydantic import AwareDatetime

from agents._frozen import Frozen
from agents.beliefs import NodeBelief
from agents.desires import GoalKind
from agents.detection import Finding
from twin.actions import Action


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


def plan_hash(actions: Sequence[Action]) -> str:
    """Stable hash of a plan's actions (canonical JSON, order kept: order is part of the plan)."""
    body = json.dumps([a.model_dump(mode="json") for a in actions], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def proposal_id(twin_id: str, target: str, plan_hash_: str) -> str:
    """Stable proposal id: the same plan for the same target of the same twin always gets the same id."""
    return "p-" + hashlib.sha256(f"{twin_id}\x1f{target}\x1f{plan_hash_}".encode()).hexdigest()[:20]
