"""Pre-approvals of playbook runs: give one (approvers of the same run join one grant) and list them.

Giving one needs the approver role; reading them the viewer role. `PreapprovalService` does the
work as the caller's principal: it loads the playbook as it is now, checks the window and signs
the approval with the approval service's key. This router turns its refusals into problem
details: an unknown playbook is a 404, a time it refuses a 422 naming the field, a grant that
cannot take the approval (the caller already approved it, a run used it, it expired) a 409.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agents.playbook import PlaybookError
from agents.playbook.model import NAME_PATTERN
from controller.adapters.identity import Role
from controller.adapters.preapprovals import PreapprovalRecord
from controller.api.auth import Caller, require_role
from controller.api.context import context_of
from controller.api.problems import Problem, problem_responses
from controller.app.playbooks import playbook_files
from controller.app.preapprovals import PreapprovalError
from controller.core.errors import ConflictError

__all__ = [
    "API_FIELDS",
    "PreapprovalList",
    "PreapprovalView",
    "PreapproveBody",
    "playbook_problem",
    "refused_field",
    "reworded",
    "router",
]

router = APIRouter(prefix="/playbooks", tags=["playbook pre-approvals"])

Viewer = Annotated[Caller, Depends(require_role(Role.VIEWER))]
Approver = Annotated[Caller, Depends(require_role(Role.APPROVER))]
PlaybookName = Annotated[str, Path(pattern=NAME_PATTERN, description="The playbook's name (playbooks/<name>.yaml).")]

_TEXT_MAX = 2000
_OPTIONS = ("--run-at", "--expires")
"""How the service names the two times in its refusals (it speaks the CLI's options)."""
API_FIELDS: Mapping[str, str] = {"--run-at": "run_at", "--expires": "expires_at"}
"""The service's option names as this API's body fields."""


class PreapproveBody(BaseModel):
    """The run to pre-approve and until when; times in ISO 8601 with a zone."""

    model_config = ConfigDict(extra="forbid")

    run_at: AwareDatetime = Field(description="The scheduled run; a run starting up to 15 minutes earlier is covered.")
    expires_at: AwareDatetime = Field(description="When the pre-approval lapses: after run_at, at most 7 days away.")
    comment: str = Field("", max_length=_TEXT_MAX, description="Recorded with the approval in the audit trail.")


class PreapprovalView(BaseModel):
    """One pre-approval: the run it covers, who approved it, and whether a run has used it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    playbook: str
    version: int
    run_at: datetime
    expires_at: datetime
    approvers: list[str] = Field(description="The approvers' ids, in the order they approved.")
    status: Literal["open", "used", "expired"]
    created_by: str
    created_at: datetime
    used_by_run: str | None = Field(None, description="The playbook run that used it (its run id).")
    used_at: datetime | None = None

    @classmethod
    def of(cls, record: PreapprovalRecord, now: datetime) -> PreapprovalView:
        """The view of a stored pre-approval as it stands at `now`."""
        grant = record.grant
        return cls(
            id=grant.id,
            playbook=grant.playbook,
            version=grant.version,
            run_at=grant.run_at,
            expires_at=grant.expires_at,
            approvers=[a.principal.id for a in grant.approvals],
            status=record.status(now),
            created_by=record.created_by,
            created_at=record.created_at,
            used_by_run=record.used_by_run,
            used_at=record.used_at,
        )


class PreapprovalList(BaseModel):
    """Pre-approvals, the latest run first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preapprovals: list[PreapprovalView]


def refused_field(exc: PreapprovalError) -> str | None:
    """The option a refusal is about (`--run-at`, `--expires`): the service's message starts with it."""
    return next((option for option in _OPTIONS if str(exc).startswith(option)), None)


def reworded(exc: PreapprovalError, names: Mapping[str, str]) -> str:
    """The service's message with its option names replaced by `names` (the caller's words for them)."""
    message = str(exc)
    for option in _OPTIONS:
        message = message.replace(option, names[option])
    return message


def playbook_problem(name: str, exc: PlaybookError, directory: pathlib.Path) -> Problem:
    """A 404 naming the known playbooks when there is no such file; a 409 when the file does not load."""
    if not (directory / f"{name}.yaml").is_file():
        known = ", ".join(p.stem for p in playbook_files(directory)) or "none"
        return Problem(404, "not-found", "Not found", f"no playbook {name!r} (known: {known})")
    return Problem(409, "playbook-invalid", "The playbook does not load", str(exc))


@router.get(
    "/preapprovals",
    summary="List pre-approvals of playbook runs, the latest run first",
    response_model=PreapprovalList,
    responses=problem_responses(401, 403, 422),
)
async def get_preapprovals(
    request: Request,
    caller: Viewer,
    playbook: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only the pre-approvals of this playbook.")
    ] = None,
) -> PreapprovalList:
    """Each pre-approval with its run, window, approvers, and the run that used it (if one did)."""
    records = await context_of(request).preapprovals().list(caller.principal, playbook)
    now = datetime.now(UTC)
    return PreapprovalList(preapprovals=[PreapprovalView.of(r, now) for r in records])


@router.post(
    "/{name}/preapprovals",
    status_code=201,
    summary="Pre-approve a scheduled run of a playbook (approvers of the same run join one grant)",
    response_model=PreapprovalView,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def preapprove(request: Request, name: PlaybookName, body: PreapproveBody, caller: Approver) -> PreapprovalView:
    """Approve the run at run_at ahead of time, as the caller; the run uses it once, for steps waiting for a human."""
    ctx = context_of(request)
    try:
        record = await ctx.preapprovals().preapprove(caller.principal, name, body.run_at, body.expires_at, body.comment)
    except PreapprovalError as exc:
        option = refused_field(exc)
        where = f"body.{API_FIELDS[option]}" if option else "body"
        detail = reworded(exc, API_FIELDS)
        raise Problem(422, "invalid-request", "Invalid request", detail, invalid=[(where, detail)]) from None
    except PlaybookError as exc:
        raise playbook_problem(name, exc, ctx.settings.playbooks_dir) from None
    except ConflictError as exc:
        raise Problem(409, "preapproval-closed", "The pre-approval cannot take this approval", str(exc)) from None
    return PreapprovalView.of(record, datetime.now(UTC))
