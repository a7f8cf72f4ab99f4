"""Timeouts and retry policies of every workflow's activities, named once.

Every workflow imports these; a retry bound here is a
decision about what a failure means, so each says why.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from workflows.activities import ACTUATOR_REJECTED

__all__ = [
    "AUDIT_RETRY",
    "AUDIT_TIMEOUT",
    "AWAIT_GOALS_RETRY",
    "COMPENSATION_RETRY",
    "DELIBERATE_RETRY",
    "DELIBERATE_TIMEOUT",
    "INBOX_RETRY",
    "INBOX_TIMEOUT",
    "NOTIFY_RETRY",
    "NOTIFY_TIMEOUT",
    "PLAYBOOK_FINISH_RETRY",
    "PLAYBOOK_FINISH_TIMEOUT",
    "PLAYBOOK_PLAN_RETRY",
    "PLAYBOOK_PLAN_TIMEOUT",
    "POLICY_RETRY",
    "POLICY_TIMEOUT",
    "SNAPSHOT_RETRY",
    "SNAPSHOT_TIMEOUT",
    "STEP_HEARTBEAT",
    "STEP_RETRY",
    "STEP_TIMEOUT",
    "VERIFY_RETRY",
    "VERIFY_TIMEOUT",
]

AUDIT_TIMEOUT = timedelta(seconds=30)
# The trail must not lose an event: retry until the ledger answers (a conflict is non-retryable).
AUDIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
POLICY_TIMEOUT = timedelta(seconds=15)
# The gate fails closed itself (a deny, not an error); an error here is the worker's, worth a few tries.
POLICY_RETRY = RetryPolicy(maximum_attempts=3)
INBOX_TIMEOUT = timedelta(seconds=30)
# The queue is how humans find the proposal: keep trying, the workflow state is the source of truth.
INBOX_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
NOTIFY_TIMEOUT = timedelta(seconds=30)
# A pager outage must not hold the remediation: a few tries, then the workflow goes on without it.
NOTIFY_RETRY = RetryPolicy(maximum_attempts=5)
STEP_TIMEOUT = timedelta(minutes=5)
# Heartbeats every 2 s: a dead worker is noticed in 10 s and the step retried under the same key.
STEP_HEARTBEAT = timedelta(seconds=10)
# The estate refusing an action is final; an unreachable estate is retried (idempotency keys make it safe).
STEP_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=[ACTUATOR_REJECTED])
# Undo tries harder and longer than the step did: a failed compensation leaves the estate changed.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=[ACTUATOR_REJECTED],
)
# Polling for the goals after the verification window: often at first, then every 15 s; the settle
# period (schedule-to-close) bounds it, so no attempt limit.
AWAIT_GOALS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=15)
)
VERIFY_TIMEOUT = timedelta(seconds=60)
# After these tries the twin is unreadable: the fix cannot be verified, so it is rolled back (fail closed).
VERIFY_RETRY = RetryPolicy(maximum_attempts=5)
SNAPSHOT_TIMEOUT = timedelta(seconds=30)
# A tick without a snapshot is skipped (no fresh twin, no action); the next tick tries again.
SNAPSHOT_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
DELIBERATE_TIMEOUT = timedelta(seconds=60)
# Deliberation is pure: the same snapshot fails the same way, so a few tries, then the tick is skipped.
DELIBERATE_RETRY = RetryPolicy(maximum_attempts=3)
PLAYBOOK_PLAN_TIMEOUT = timedelta(seconds=60)
# The twin may be briefly away: a few tries, then the run records that it could not plan (no action).
PLAYBOOK_PLAN_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))
PLAYBOOK_FINISH_TIMEOUT = timedelta(seconds=60)
# The run's report must be kept (the morning report is how humans learn what happened): retry until stored.
PLAYBOOK_FINISH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
