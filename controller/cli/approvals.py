"""`twinops queue | show | approve | reject | cancel`: the approval queue and the remediations behind it.

With TWINOPS_API_URL set they go through the HTTP API as the user of TWINOPS_TOKEN
(`_api_client`); otherwise straight to Temporal and the database. The output is the same.
Temporal, SQLAlchemy, httpx and the workflows are imported inside the commands: `--help` and
the other commands do not pay for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from controller.cli._api_client import ApiClient
from controller.cli._approval_views import approval_sentence, entry_requirement, print_state, queue_table, state_json
from controller.cli._common import console, fail, print_json, run_async, settings_of
from controller.core.errors import TwinopsError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from controller.adapters.identity import Identities
    from controller.adapters.inbox import SqlApprovalInbox
    from controller.app.approval_service import ApprovalService
    from controller.core.settings import Settings
    from workflows import RemediationState
    from workflows.ports import InboxEntry

app = typer.Typer(add_completion=False)

_PROPOSAL = typer.Argument(help="proposal id (a unique prefix is enough)")
T = TypeVar("T")


def _token(settings: Settings) -> str:
    if settings.token is None:
        fail("set TWINOPS_TOKEN to your API token (an admin creates one with `twinops users add`)")
    return settings.token.get_secret_value()


class _Stores:
    """The engine and the stores a command reads; the user store only when asked for."""

    def __init__(self, engine: Engine, inbox: SqlApprovalInbox) -> None:
        self.engine = engine
        self.inbox = inbox

    @cached_property
    def identities(self) -> Identities:
        """The user store (imported only by the commands that authenticate)."""
        from controller.adapters.identity import Identities

        return Identities(self.engine)

    def resolve(self, proposal: str) -> str:
        """The full proposal id for an id or unique prefix (the one resolver every command uses)."""
        from controller.cli._ids import proposal_ids, resolve_id

        try:
            return resolve_id(proposal, proposal_ids(self.engine))
        except TwinopsError as exc:
            fail(str(exc))


def _stores(settings: Settings, *, migrate_first: bool = True) -> _Stores:
    from controller.adapters.inbox import SqlApprovalInbox
    from controller.core.db import create_engine, migrate

    engine = create_engine(settings.resolved_database_url)
    if migrate_first:
        migrate(engine)
    return _Stores(engine, SqlApprovalInbox(engine))


def _list_entries(settings: Settings, include_closed: bool) -> list[InboxEntry]:
    """The queue, migrating only when the read fails (no schema yet, or an older one).

    Reads select every column by name, so a schema behind the code fails the read; Alembic
    (a fifth of a second to load and check) is then paid once, not on every `queue`.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from controller.core.db import migrate

    stores = _stores(settings, migrate_first=False)
    try:
        return stores.inbox.list(include_closed=include_closed)
    except SQLAlchemyError:
        migrate(stores.engine)
        return stores.inbox.list(include_closed=include_closed)


async def _service(settings: Settings, stores: _Stores) -> ApprovalService:
    from controller.adapters.temporal_server import connect
    from controller.app.approval_service import ApprovalService
    from controller.app.decision_signer import DecisionSigner

    signer = DecisionSigner.from_settings(settings)
    return ApprovalService(await connect(settings), stores.inbox, stores.identities, signer)


def _decide(
    ctx: typer.Context, proposal: str, act: Callable[[ApprovalService, str, str], Awaitable[T]]
) -> tuple[str, T]:
    """Resolve the id, then act through the approval service as the user of TWINOPS_TOKEN."""
    settings = settings_of(ctx)
    token = _token(settings)
    stores = _stores(settings)
    full = stores.resolve(proposal)

    async def go() -> T:
        return await act(await _service(settings, stores), token, full)

    return full, run_async(go)


def _api(ctx: typer.Context) -> ApiClient | None:
    """The API client when TWINOPS_API_URL is set, else None (the direct path)."""
    return ApiClient.from_settings(settings_of(ctx))


def _reason(reason: str) -> str:
    if not reason.strip():
        fail("--reason: say why (it is recorded in the audit trail)")
    return reason.strip()


@app.command()
def queue(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="include closed proposals")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output, nothing cut")] = False,
) -> None:
    """List proposals waiting for approval (or every proposal with --all)."""
    api = _api(ctx)
    entries = api.entries(all_) if api else _list_entries(settings_of(ctx), include_closed=all_)
    if as_json:
        print_json([{**e.model_dump(mode="json"), "requirement": entry_requirement(e)} for e in entries])
    else:
        console.print(queue_table(entries))


@app.command()
def approve(
    ctx: typer.Context,
    proposal: Annotated[str, _PROPOSAL],
    comment: Annotated[str, typer.Option("--comment")] = "",
) -> None:
    """Approve a proposal as the user of TWINOPS_TOKEN."""
    api = _api(ctx)
    if api:
        full, result = api.approve(proposal, comment)
    else:
        full, result = _decide(ctx, proposal, lambda service, token, full: service.approve(token, full, comment))
    console.print(approval_sentence(full, result), highlight=False, soft_wrap=True)


@app.command()
def reject(
    ctx: typer.Context,
    proposal: Annotated[str, _PROPOSAL],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded in the audit trail)")],
) -> None:
    """Reject a proposal as the user of TWINOPS_TOKEN."""
    reason = _reason(reason)
    api = _api(ctx)
    if api:
        full, result = api.reject(proposal, reason)
    else:
        full, result = _decide(ctx, proposal, lambda service, token, full: service.reject(token, full, reason))
    if result.reasons != ["rejected"]:
        fail(f"proposal {full!r} was not rejected: {'; '.join(result.reasons) or 'no reason given'}")
    console.print(f"rejected proposal {full}: {reason}", highlight=False, soft_wrap=True)


@app.command()
def cancel(
    ctx: typer.Context,
    proposal: Annotated[str, _PROPOSAL],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded in the audit trail)")],
) -> None:
    """Cancel a remediation; steps already executed are compensated."""
    reason = _reason(reason)
    api = _api(ctx)
    if api:
        full = api.cancel(proposal, reason)
    else:
        full, _ = _decide(ctx, proposal, lambda service, token, full: service.cancel(token, full, reason))
    console.print(
        f"cancellation requested for {full}: {reason} (executed steps are compensated)",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def show(
    ctx: typer.Context,
    proposal: Annotated[str, _PROPOSAL],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output, nothing cut")] = False,
) -> None:
    """Live state of a remediation: plan, policy reasons, what approval still needs, steps done, deadline."""
    api = _api(ctx)
    entry, state = api.proposal(proposal) if api else _live(ctx, proposal)
    if as_json:
        print_json(state_json(state, entry))
        return
    print_state(state, entry)


def _live(ctx: typer.Context, proposal: str) -> tuple[InboxEntry, RemediationState]:
    """A proposal's inbox entry and its workflow's live state, read directly (as the user of TWINOPS_TOKEN)."""
    settings = settings_of(ctx)
    token = _token(settings)
    stores = _stores(settings)
    full = stores.resolve(proposal)

    async def go() -> RemediationState:
        return await (await _service(settings, stores)).state(token, full)

    state = run_async(go)
    return stores.inbox.get(full), state
