"""Events that make the agent loop look at its twin now: Alertmanager alerts and pushed snapshots.

`TwinEvents` is what `POST /api/v1/alerts` and `POST /api/v1/twins/{id}/snapshots` call:

- An Alertmanager webhook (version 4) is read alert by alert. A firing alert whose node label
  (`TWINOPS_ALERT_NODE_LABEL`, default `service`) names a node of the twin is sent to the twin's
  agent loop (signal `wake`), which ticks at once, keeps it as evidence and records it; a repeat of
  one the loop holds only refreshes it; a resolved one is forgotten; one without the label or on a
  node the twin does not have is answered as ignored, saying why.
- A pushed twin.v1 snapshot is validated, stored (once per observation time) for the `push` twin
  source, and wakes the loop when it is the twin's newest.

The loop's signals are durable in Temporal: an alert reaching a busy loop waits for its next tick,
never lost. A loop that is not running, or a Temporal that cannot be reached, is an error the
sender sees (503), so Alertmanager sends the alert again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from agents import AlertNote
from controller.adapters.metrics import TwinopsMetrics
from controller.adapters.pushed_snapshots import SqlPushedSnapshots
from controller.app.agent_loop import agent_loop_id
from controller.core.errors import RuntimeUnavailableError
from twin.contract import Snapshot
from workflows import AgentLoopWorkflow
from workflows.agent_loop import AgentLoopState, WakeUp

__all__ = [
    "AlertOutcome",
    "AlertmanagerAlert",
    "AlertmanagerWebhook",
    "AlertsAnswer",
    "LoopUnavailableError",
    "SnapshotAnswer",
    "TwinEvents",
]

log = structlog.get_logger(__name__)

TEMPORAL_TIMEOUT_SECONDS = 10.0
"""How long a query or signal to the loop may take before the sender is told to send again (503)."""


class LoopUnavailableError(RuntimeUnavailableError):
    """The twin's agent loop cannot be told now (not running, or Temporal unreachable): send again later."""


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager webhook (fields as Alertmanager 0.25 sends them)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime  # noqa: N815 - Alertmanager's field names
    endsAt: AwareDatetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=200)


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    externalURL: str | None = None  # noqa: N815
    alerts: list[AlertmanagerAlert] = Field(max_length=1000)


class AlertOutcome(BaseModel):
    """What became of one alert."""

    fingerprint: str
    name: str
    node: str | None
    outcome: Literal["accepted", "repeated", "resolved", "ignored"]
    detail: str


class AlertsAnswer(BaseModel):
    """The answer to one webhook: per alert what became of it, and whether the loop was woken."""

    twin_id: str
    woke: bool
    """Whether the loop was told to tick now (a new firing alert on a node of the twin)."""
    alerts: list[AlertOutcome]


class SnapshotAnswer(BaseModel):
    """The answer to one pushed snapshot."""

    twin_id: str
    observed_at: datetime
    stored: bool
    """False: a snapshot of this twin observed at this moment was stored before (a retried push)."""
    woke: bool
    detail: str


class TwinEvents:
    """Turns alerts and pushed snapshots into wake-ups of a twin's agent loop."""

    def __init__(
        self,
        client: Client,
        twin_id: str,
        *,
        node_label: str = "service",
        snapshots: SqlPushedSnapshots | None = None,
        metrics: TwinopsMetrics | None = None,
    ) -> None:
        self.client = client
        self.twin_id = twin_id
        self.node_label = node_label
        self.snapshots = snapshots
        self.metrics = metrics

    async def _loop_state(self) -> AgentLoopState:
        handle = self.client.get_workflow_handle(agent_loop_id(self.twin_id))
        not_running = f"the agent loop of twin {self.twin_id!r} is not running (start it: twinops up)"
        try:
            described = await asyncio.wait_for(handle.describe(), TEMPORAL_TIMEOUT_SECONDS)
            if described.status is not WorkflowExecutionStatus.RUNNING:
                status = described.status.name.lower() if described.status else "unknown"
                raise LoopUnavailableError(f"{not_running}; its last run is {status}")
            return await asyncio.wait_for(handle.query(AgentLoopWorkflow.state), TEMPORAL_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            raise LoopUnavailableError(
                f"the agent loop of twin {self.twin_id!r} did not answer within {TEMPORAL_TIMEOUT_SECONDS:g}s"
            ) from exc
        except RuntimeError as exc:  # the client's connection is gone (the approval service maps it alike)
            raise LoopUnavailableError(
                f"Temporal cannot be reached for the agent loop of {self.twin_id!r}: {exc}"
            ) from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise LoopUnavailableError(not_running) from exc
            raise LoopUnavailableError(
                f"Temporal did not answer for the agent loop of {self.twin_id!r}: {exc}"
            ) from exc
        except WorkflowQueryFailedError as exc:
            raise LoopUnavailableError(f"the agent loop of twin {self.twin_id!r} cannot be asked: {exc}") from exc

    async def _wake(self, wake: WakeUp) -> None:
        handle = self.client.get_workflow_handle(agent_loop_id(self.twin_id))
        try:
            await asyncio.wait_for(handle.signal(AgentLoopWorkflow.wake, wake), TEMPORAL_TIMEOUT_SECONDS)
        except (RPCError, RuntimeError, TimeoutError) as exc:
            raise LoopUnavailableError(f"the agent loop of twin {self.twin_id!r} could not be told: {exc}") from exc
        if self.metrics is not None:
            self.metrics.loop_wakeups.labels(reason=wake.reason).inc()

    async def alerts(self, webhook: AlertmanagerWebhook, posted_by: str) -> AlertsAnswer:
        """Sort the webhook's alerts; send the firing and resolved ones on the twin's nodes to its loop."""
        state = await self._loop_state()
        if not state.nodes:
            # Which node an alert is about cannot be checked before the loop's first snapshot: send again.
            raise LoopUnavailableError(
                f"the agent loop of twin {self.twin_id!r} has no snapshot yet (its twin source: see its last error); "
                "the alerts cannot be placed on nodes"
            )
        nodes = set(state.nodes)
        held = {a.fingerprint: a for a in state.alerts}
        now = datetime.now(UTC)
        outcomes: list[AlertOutcome] = []
        firing: list[AlertNote] = []
        resolved: list[str] = []
        new = False
        for alert in webhook.alerts:
            name = alert.labels.get("alertname", "unnamed")
            node = alert.labels.get(self.node_label)
            if alert.status == "resolved" and alert.fingerprint in held:
                resolved.append(alert.fingerprint)  # whatever its node now: it is held, so let it go
                outcome, detail = "resolved", "forgotten as evidence"
            elif node is None:
                outcome, detail = "ignored", f"no {self.node_label!r} label: it names no node of twin {self.twin_id!r}"
            elif node not in nodes:
                outcome, detail = "ignored", f"twin {self.twin_id!r} has no node {node!r}"
            elif alert.status == "resolved":
                outcome, detail = "resolved", "was not held: nothing to forget"
            else:
                note = _note(alert, name, node, now, posted_by, webhook.externalURL)
                firing.append(note)
                known = held.get(alert.fingerprint)
                if known is not None and known.starts_at == note.starts_at:
                    outcome, detail = "repeated", "already held as evidence: refreshed, no new tick"
                else:
                    new = True
                    outcome, detail = "accepted", f"the loop of {self.twin_id!r} looks at {node} now"
            outcomes.append(
                AlertOutcome.model_validate(
                    {
                        "fingerprint": alert.fingerprint,
                        "name": name,
                        "node": node,
                        "outcome": outcome,
                        "detail": detail,
                    }
                )
            )
        if firing or resolved:
            await self._wake(
                WakeUp(
                    reason="alert",
                    detail=f"{len(firing)} firing, {len(resolved)} resolved from {posted_by}",
                    alerts=firing,
                    resolved=resolved,
                )
            )
        if self.metrics is not None:
            for o in outcomes:
                self.metrics.alerts_received.labels(outcome=o.outcome).inc()
        log.info(
            "alerts.received",
            twin=self.twin_id,
            by=posted_by,
            **{o: sum(1 for x in outcomes if x.outcome == o) for o in ("accepted", "repeated", "resolved", "ignored")},
        )
        return AlertsAnswer(twin_id=self.twin_id, woke=new, alerts=outcomes)

    async def push_snapshot(self, snapshot: Snapshot, pushed_by: str) -> SnapshotAnswer:
        """Store a pushed snapshot and wake the loop when it is the twin's newest."""
        if self.snapshots is None:
            raise LoopUnavailableError("this API keeps no pushed snapshots (no database)")
        stored = await self.snapshots.store(snapshot, pushed_by)
        woke, detail = False, "stored"
        if not stored.stored:
            detail = "already stored (a retried push): nothing to do"
        elif not stored.newest:
            detail = "stored; a newer snapshot of this twin is already there, so the loop was not woken"
        elif snapshot.twin_id == self.twin_id:
            try:
                await self._wake(WakeUp(reason="snapshot", detail=f"pushed by {pushed_by}"))
                woke, detail = True, "stored; the agent loop looks at it now"
            except LoopUnavailableError as exc:
                detail = f"stored; {exc}"
        else:
            detail = f"stored; this API's agent loop watches twin {self.twin_id!r}, not {snapshot.twin_id!r}"
        if self.metrics is not None:
            result = "woke" if woke else "stored" if stored.stored else "repeated"
            self.metrics.snapshots_pushed.labels(result=result).inc()
        return SnapshotAnswer(
            twin_id=snapshot.twin_id, observed_at=snapshot.observed_at, stored=stored.stored, woke=woke, detail=detail
        )


def _note(
    alert: AlertmanagerAlert, name: str, node: str, now: datetime, posted_by: str, external_url: str | None
) -> AlertNote:
    annotations: Mapping[str, Any] = alert.annotations
    summary = str(annotations.get("summary") or annotations.get("description") or "")[:500]
    return AlertNote(
        fingerprint=alert.fingerprint,
        name=name[:200],
        node=node,
        starts_at=alert.startsAt,
        received_at=now,
        severity=alert.labels.get("severity"),
        summary=summary,
        url=alert.generatorURL or external_url,
        posted_by=posted_by,
    )
