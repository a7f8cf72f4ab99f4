"""Events for tests: a realistic remediation trail and filler events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.audit import AuditEventInput

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
DIGEST = "ab" * 32


def step_event(i: int, *, remediation: str = "rem-1", prefix: str = "ev", node: str = "checkout") -> AuditEventInput:
    """A step_started event numbered i."""
    return AuditEventInput(
        event_id=f"{prefix}-{i}",
        time=T0 + timedelta(seconds=i),
        remediation_id=remediation,
        workflow_id=f"remediation/{remediation}",
        run_id="run-1",
        actor="agent:executor",
        kind="step_started",
        target_nodes=(node,),
        payload={
            "step_id": f"s{i}",
            "action": {"type": "scale", "node": node, "from": 2, "to": 4},
            "idempotency_key": f"{remediation}:s{i}",
        },
    )


def remediation_trail(remediation: str = "rem-1") -> list[AuditEventInput]:
    """One remediation from detection to rollback, every kind a report shows."""
    wf = f"remediation/{remediation}"

    def ev(n: int, kind: str, actor: str, payload: dict[str, Any]) -> AuditEventInput:
        return AuditEventInput(
            event_id=f"{remediation}:{n}:{kind}",
            time=T0 + timedelta(minutes=n),
            remediation_id=remediation,
            workflow_id=wf,
            run_id="run-1",
            actor=actor,
            kind=kind,
            target_nodes=("checkout", "payments"),
            payload=payload,
        )

    return [
        ev(
            0,
            "detected",
            "agent:detector",
            {
                "twin_id": "shop",
                "constraint": "payments",
                "findings": [{"node": "payments", "kind": "saturated", "demand_utilization": 1.2}],
            },
        ),
        ev(
            1,
            "proposed",
            "agent:planner",
            {
                "beliefs": {"payments": {"rho": 1.2}},
                "plan": {"actions": [{"type": "scale", "node": "payments", "from": 2, "to": 4}]},
                "alternatives": [{"plan": "shed load", "rejected_because": "loses orders"}],
                "rationale": "scale payments <b>before</b> checkout",
            },
        ),
        ev(
            2,
            "policy_evaluated",
            "system",
            {
                "input_digest": DIGEST,
                "allow": True,
                "decision": {"allow": True, "reasons": [{"msg": "within budget"}]},
                "bundle_revision": "r42",
                "bundle_sha256": "cd" * 32,
            },
        ),
        ev(3, "approval_requested", "system", {"approval_id": "ap-1", "summary": "scale payments 2->4"}),
        ev(4, "approved", "user:ann", {"by": "user:ann", "comment": "go", "rule": "one_sre"}),
        ev(
            5, "step_started", "agent:executor", {"step_id": "s1", "action": {"type": "scale"}, "idempotency_key": "k1"}
        ),
        ev(6, "step_succeeded", "agent:executor", {"step_id": "s1", "result": {"replicas": 4}}),
        ev(7, "verification_failed", "system", {"reason": "p95 worse"}),
        ev(8, "compensation_started", "system", {"step_id": "s1", "action": {"type": "scale", "to": 2}}),
        ev(9, "compensated", "system", {"step_id": "s1"}),
        ev(10, "completed", "system", {"outcome": "rolled_back", "summary": "rolled back"}),
    ]
