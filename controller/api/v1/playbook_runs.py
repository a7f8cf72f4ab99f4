"""Playbook runs: the list of runs, newest first, and one run's full report.

Read-only, for the viewer role and up. The reports are written by the playbook run workflow
(through `PlaybookRunStore`); this router reads them back as stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from controller.adapters.identity import Role
from controller.api.auth import Caller, require_role
from controller.api.context import context_of
from controller.api.problems import problem_responses
from controller.app.playbook_reports import PlaybookRunSummary, run_summary
from workflows.playbook_contracts import PlaybookRunReport

__all__ = ["PlaybookRunList", "router"]

router = APIRouter(prefix="/playbook-runs", tags=["playbook runs"])

Viewer = Annotated[Caller, Depends(require_role(Role.VIEWER))]
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PlaybookRunList(BaseModel):
    """Playbook runs, newest first by when they ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runs: list[PlaybookRunSummary]


@router.get(
    "",
    summary="List playbook runs, newest first",
    response_model=PlaybookRunList,
    responses=problem_responses(401, 403, 422),
)
async def get_playbook_runs(
    request: Request,
    _: Viewer,
    playbook: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only the runs of this playbook.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PlaybookRunList:
    """Each run with its playbook, version, status, times, outcome counts and one-line summary."""
    reports = await context_of(request).playbook_runs().list(playbook, limit)
    return PlaybookRunList(runs=[run_summary(r) for r in reports])


@router.get(
    "/{run_id}",
    summary="The report of one playbook run",
    response_model=PlaybookRunReport,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_playbook_run(
    request: Request,
    run_id: Annotated[str, Path(min_length=1, max_length=400, description="The run's id (its workflow id).")],
    _: Viewer,
) -> PlaybookRunReport:
    """What ran where with before/after figures, what waits for approval, what the policy denied and why."""
    return await context_of(request).playbook_runs().get(run_id)
