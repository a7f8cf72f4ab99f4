"""One way for a workflow to write an audit event: ids from the workflow, one retry policy.

Every state change of a remediation writes one event. Ids derive from the workflow id,
run id and a counter that replay reproduces, so Temporal's retries of the recording
activity append nothing twice (the ledger is idempotent by event id).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.activities import RemediationActivities
from workflows.audit import AuditEventInput, EventKind
from workflows.timeouts import AUDIT_RETRY, AUDIT_TIMEOUT

__all__ = ["AuditRecorder"]


class AuditRecorder:
    """Records a workflow's events in order; create it in the workflow, call it from workflow code only."""

    def __init__(self, *, remediation_id: str, actor: str, targets: tuple[str, ...]) -> None:
        self.remediation_id = remediation_id
        self.actor = actor
        """The actor of events that name none (the requester: agent:NAME, playbook:NAME, user:ID)."""
        self.targets = targets
        self.count = 0
        """Events recorded so far by this run; part of each event id."""

    async def record(
        self,
        kind: EventKind,
        payload: Any,
        *,
        actor: str | None = None,
        targets: tuple[str, ...] | None = None,
        remediation_id: str | None = None,
        series: str = "",
    ) -> None:
        """Append one event; `series` names a kind of event in the id (`.../loop-breaker/001`)."""
        self.count += 1
        info = workflow.info()
        prefix = f"{info.workflow_id}/{info.run_id}/" + (f"{series}/" if series else "")
        event = AuditEventInput(
            event_id=f"{prefix}{self.count:03d}",
            time=workflow.now(),
            remediation_id=remediation_id or self.remediation_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            actor=actor or self.actor,
            kind=kind,
            target_nodes=targets if targets is not None else self.targets,
            payload=payload,
        )
        await workflow.execute_activity_method(
            RemediationActivities.record_event, event, start_to_close_timeout=AUDIT_TIMEOUT, retry_policy=AUDIT_RETRY
        )
