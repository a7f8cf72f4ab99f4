"""BDI agents over the twin: beliefs, desires, detection, plan library, planner, intentions.

Pure and deterministic: no I/O, no clock or environment reads, no Temporal. Time
arrives with the snapshot. One tick is `decide(state, snapshot, desires)`.
"""

from agents.agent import Decision, decide, groups
from agents.alerts import AlertNote
from agents.beliefs import Beliefs, DataIssue, Evidence, Memory, NodeBelief, Sample, revise
from agents.declined import DeclinedPlan, SuppressedPlan
from agents.desires import Budget, Desires, DesiresError, GoalKind, UtilizationTarget, load_desires, parse_desires
from agents.detection import Detection, Finding, FindingKind, detect
from agents.intentions import AgentState, DroppedIntention, Intention, adopt, decline, settle
from agents.planner import Planner, needed_replicas, plan, projected_snapshot
from agents.proposal import (
    Alternative,
    ContextBuilder,
    ContextEdge,
    ContextNode,
    GoalResult,
    NodeOutcome,
    PlanOption,
    PlanStep,
    Proposal,
    ProposalContext,
    plan_hash,
    proposal_context,
    proposal_id,
)
from agents.trend import theil_sen_slope
from agents.whatif import Prediction, SimulatorWhatIf, SteadyStateWhatIf, WhatIf, steady_state

__all__ = [
    "AgentState",
    "AlertNote",
    "Alternative",
    "Beliefs",
    "Budget",
    "ContextBuilder",
    "ContextEdge",
    "ContextNode",
    "DataIssue",
    "Decision",
    "DeclinedPlan",
    "Desires",
    "DesiresError",
    "Detection",
    "DroppedIntention",
    "Evidence",
    "Finding",
    "FindingKind",
    "GoalKind",
    "GoalResult",
    "Intention",
    "Memory",
    "NodeBelief",
    "NodeOutcome",
    "PlanOption",
    "PlanStep",
    "Planner",
    "Prediction",
    "Proposal",
    "ProposalContext",
    "Sample",
    "SimulatorWhatIf",
    "SteadyStateWhatIf",
    "SuppressedPlan",
    "UtilizationTarget",
    "WhatIf",
    "adopt",
    "decide",
    "decline",
    "detect",
    "groups",
    "load_desires",
    "needed_replicas",
    "parse_desires",
    "plan",
    "plan_hash",
    "projected_snapshot",
    "proposal_context",
    "proposal_id",
    "revise",
    "settle",
    "steady_state",
    "theil_sen_slope",
]
