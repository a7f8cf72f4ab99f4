"""Temporal workflows of the closed loop, their activities, ports and message contracts."""

from workflows.activities import AgentActivities, DeliberateInput, RemediationActivities
from workflows.agent_loop import AgentLoopInput, AgentLoopState, AgentLoopWorkflow
from workflows.contracts import (
    ApprovalResult,
    ApproveInput,
    Principal,
    RejectInput,
    RemediationInput,
    RemediationResult,
    RemediationState,
    Stage,
    Timeouts,
)
from workflows.playbook_activities import PlaybookActivities
from workflows.playbook_contracts import PlaybookRunInput, PlaybookRunReport
from workflows.playbook_run import PlaybookRunState, PlaybookRunWorkflow
from workflows.remediation import RemediationWorkflow, policy_proposal
from workflows.verification import check_goals

__all__ = [
    "AgentActivities",
    "AgentLoopInput",
    "AgentLoopState",
    "AgentLoopWorkflow",
    "ApprovalResult",
    "ApproveInput",
    "DeliberateInput",
    "PlaybookActivities",
    "PlaybookRunInput",
    "PlaybookRunReport",
    "PlaybookRunState",
    "PlaybookRunWorkflow",
    "Principal",
    "RejectInput",
    "RemediationActivities",
    "RemediationInput",
    "RemediationResult",
    "RemediationState",
    "RemediationWorkflow",
    "Stage",
    "Timeouts",
    "check_goals",
    "policy_proposal",
]
