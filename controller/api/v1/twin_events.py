"""What machines post: Alertmanager's webhook and pushed twin snapshots. Both wake the twin's agent loop.

Only a `system` user may post here (`twinops users add alertmanager --role system`), with its
API token as a bearer token or as the password of HTTP Basic (Alertmanager's `http_config`
offers both). Humans, admins too, get a 403: an alert is evidence the agent acts on.

- `POST /alerts`: Alertmanager webhook version 4. 202 with what became of each alert. A body that
  is not one (wrong version, missing fields) is a 422 naming the field; a loop that is not
  running or a Temporal that does not answer is a 503, so Alertmanager sends it again.
- `POST /twins/{twin_id}/snapshots`: one twin.v1 snapshot. 202 with what was done: stored (and the
  loop woken when it is the newest), or `stored: false` when that moment was stored before (a
  retried push); 422 naming what is invalid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from controller.adapters.pushed_snapshots import SqlPushedSnapshots
from controller.api.auth import Caller, require_system
from controller.api.context import context_of
from controller.api.problems import Problem, problem_responses
from controller.app.twin_events import AlertmanagerWebhook, AlertsAnswer, SnapshotAnswer, TwinEvents
from twin.contract import SnapshotError, parse_snapshot
from twin.sources import MAX_CLOCK_SKEW_SECONDS

__all__ = ["router", "twin_events"]

router = APIRouter(tags=["alerts and snapshots"])

System = Annotated[Caller, Depends(require_system)]
TwinId = Annotated[str, Path(min_length=1, max_length=200, description="The twin the snapshot is of.")]
MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
"""A pushed snapshot larger than this is refused (413) before it is parsed."""


def twin_events(request: Request) -> TwinEvents:
    """The twin events service of this API process (cached), counting into the app's metrics."""
    ctx = context_of(request)
    service = ctx.extras.get("twin_events")
    if service is None:
        service = ctx.extras["twin_events"] = TwinEvents(
            ctx.client,
            ctx.settings.twin_id,
            node_label=ctx.settings.alert_node_label,
            snapshots=SqlPushedSnapshots(ctx.engine),
            metrics=getattr(request.app.state, "metrics", None),
        )
    assert isinstance(service, TwinEvents)
    return service


@router.post(
    "/alerts",
    status_code=202,
    summary="Alertmanager webhook (version 4): firing alerts on the twin's nodes wake its agent loop",
    response_model=AlertsAnswer,
    responses=problem_responses(401, 403, 422, 503),
)
async def post_alerts(request: Request, body: AlertmanagerWebhook, caller: System) -> AlertsAnswer:
    """Sort the alerts (accepted, repeated, resolved, ignored, each saying why) and tell the loop."""
    return await twin_events(request).alerts(body, caller.principal.id)


@router.post(
    "/twins/{twin_id}/snapshots",
    status_code=202,
    summary="Push one twin.v1 snapshot: stored for the push twin source; the newest wakes the agent loop",
    response_model=SnapshotAnswer,
    responses=problem_responses(401, 403, 413, 422, 503),
)
async def post_snapshot(request: Request, twin_id: TwinId, caller: System) -> SnapshotAnswer:
    """Validate the snapshot (twin.v1), check it is of `twin_id`, store it, wake the loop."""
    raw = await request.body()
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise Problem(413, "too-large", "Snapshot too large", f"{len(raw)} bytes; at most {MAX_SNAPSHOT_BYTES}")
    try:
        snapshot = parse_snapshot(raw)
    except SnapshotError as exc:
        if (metrics := getattr(request.app.state, "metrics", None)) is not None:
            metrics.snapshots_pushed.labels(result="invalid").inc()
        raise Problem(
            422,
            "invalid-snapshot",
            "Not a valid twin.v1 snapshot",
            str(exc),
            invalid=[("body", p) for p in exc.problems],
        ) from None
    ahead = (snapshot.observed_at - datetime.now(UTC)).total_seconds()
    if ahead > MAX_CLOCK_SKEW_SECONDS:
        detail = (
            f"observed_at {snapshot.observed_at.isoformat()} is {ahead:.0f}s ahead of this server's clock "
            f"(at most {MAX_CLOCK_SKEW_SECONDS:.0f}s): a snapshot from the future would hide every real one"
        )
        raise Problem(
            422, "invalid-snapshot", "Not a valid twin.v1 snapshot", detail, invalid=[("body.observed_at", detail)]
        )
    if snapshot.twin_id != twin_id:
        detail = f"the snapshot is of twin {snapshot.twin_id!r}, posted to {twin_id!r}"
        raise Problem(
            422, "invalid-snapshot", "Not a valid twin.v1 snapshot", detail, invalid=[("body.twin_id", detail)]
        )
    return await twin_events(request).push_snapshot(snapshot, caller.principal.id)
