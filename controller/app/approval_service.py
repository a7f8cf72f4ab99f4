"""The approval service: the one place that sends approvals, rejections and cancellations.

It takes an API token, resolves the principal, checks the role, finds the proposal's
workflow through the inbox, signs the decision with the service's Ed25519 key and sends
the Temporal Update. The workflow counts only decisions this key signed, so the CLI, the
HTTP API and the demo all come through here; an Update sent to Temporal directly is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from controller.adapters.identity import Identities, Role, require
from controller.adapters.inbox import SqlApprovalInbox
from controller.app.decision_signer import DecisionSigner
from controller.core.errors import NotFoundError, RuntimeUnavailableError, TwinopsError
from workflows import ApprovalResult, ApproveInput, Principal, RejectInput, RemediationState, RemediationWorkflow
from workflows.contracts import CancelInput, SignedDecision
from workflows.decisions import DecisionKind
from workflows.ports import InboxEntry

log = structlog.get_logger(__name__)


class ApprovalRefusedError(TwinopsError):
    """The workflow refused the call (not pending, already decided, expired, same approver twice)."""


class ApprovalService:
    """Approve, reject, cancel and inspect proposals on behalf of an authenticated principal."""

    def __init__(self, client: Client, inbox: SqlApprovalInbox, identities: Identities, signer: DecisionSigner) -> None:
        self.client = client
        self.inbox = inbox
        self.identities = identities
        self.signer = signer

    async def _sign(self, kind: DecisionKind, entry: InboxEntry, principal: Principal, text: str) -> SignedDecision:
        # The plan hash comes from the workflow itself: the signature binds the exact plan being decided.
        state = await self._query(entry)
        return self.signer.sign(
            kind, proposal_id=entry.proposal_id, plan_hash=state.plan_hash, principal=principal, text=text
        )

    async def principal_of(self, who: str | Principal) -> Principal:
        """The principal behind an API token, or `who` itself when the caller already authenticated it.

        The HTTP API authenticates bearer tokens, OIDC tokens and browser sessions itself and passes
        the principal; the CLI and the demo pass a token. Either way the role is checked here.
        """
        if isinstance(who, Principal):
            return who
        return await asyncio.to_thread(self.identities.resolve, who)

    async def _authorize(self, who: str | Principal, role: Role, proposal: str) -> tuple[Principal, InboxEntry]:
        principal = await self.principal_of(who)
        require(principal, role, f"to {'read' if role is Role.VIEWER else 'decide on'} proposals")
        entry = await asyncio.to_thread(self.inbox.get, proposal)
        return principal, entry

    async def approve(self, token: str | Principal, proposal: str, comment: str = "") -> ApprovalResult:
        """Approve as the token's (or the given) principal; returns whether it counted and what is still needed."""
        principal, entry = await self._authorize(token, Role.APPROVER, proposal)
        handle = self.client.get_workflow_handle(entry.workflow_id)
        signed = await self._sign("approve", entry, principal, comment)
        result: ApprovalResult = await self._update(
            entry,
            handle.execute_update(
                RemediationWorkflow.approve, ApproveInput(principal=principal, comment=comment, signed=signed)
            ),
        )
        log.info("approval.sent", proposal_id=entry.proposal_id, by=principal.id, counted=result.counted)
        return result

    async def reject(self, token: str | Principal, proposal: str, reason: str) -> ApprovalResult:
        """Reject as the token's principal, with a reason."""
        principal, entry = await self._authorize(token, Role.APPROVER, proposal)
        handle = self.client.get_workflow_handle(entry.workflow_id)
        signed = await self._sign("reject", entry, principal, reason)
        result: ApprovalResult = await self._update(
            entry,
            handle.execute_update(
                RemediationWorkflow.reject, RejectInput(principal=principal, reason=reason, signed=signed)
            ),
        )
        log.info("rejection.sent", proposal_id=entry.proposal_id, by=principal.id)
        return result

    async def cancel(self, token: str | Principal, proposal: str, reason: str) -> InboxEntry:
        """Cancel a remediation, naming who and why (executed steps are compensated by the workflow)."""
        if not reason.strip():
            raise ValueError("a cancel needs a reason (it goes into the audit trail)")
        principal, entry = await self._authorize(token, Role.APPROVER, proposal)
        handle = self.client.get_workflow_handle(entry.workflow_id)
        signed = await self._sign("cancel", entry, principal, reason)
        # First the attribution (signed, kept in the trail), then Temporal's cancel, which carries no identity.
        try:
            await handle.execute_update(
                RemediationWorkflow.request_cancel, CancelInput(principal=principal, reason=reason, signed=signed)
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause or exc)
            raise ApprovalRefusedError(f"proposal {entry.proposal_id!r}: {message}") from exc
        except RPCError as exc:
            raise await self._ended_or(entry, exc) from exc
        except RuntimeError as exc:
            raise self._connect_error(entry, exc) from exc
        try:
            await handle.cancel()
        except RPCError as exc:
            raise self._rpc_error(entry, exc) from exc
        except RuntimeError as exc:
            raise self._connect_error(entry, exc) from exc
        log.info("cancel.sent", proposal_id=entry.proposal_id, by=principal.id)
        return entry

    async def state(self, token: str | Principal, proposal: str) -> RemediationState:
        """The live state of a proposal's workflow (any authenticated user)."""
        _, entry = await self._authorize(token, Role.VIEWER, proposal)
        return await self._query(entry)

    async def _query(self, entry: InboxEntry) -> RemediationState:
        try:
            state: RemediationState = await self.client.get_workflow_handle(entry.workflow_id).query(
                RemediationWorkflow.state
            )
        except RPCError as exc:
            raise self._rpc_error(entry, exc) from exc
        except RuntimeError as exc:
            raise self._connect_error(entry, exc) from exc
        return state

    async def _update(self, entry: InboxEntry, call: Awaitable[ApprovalResult]) -> ApprovalResult:
        try:
            return await call
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause or exc)
            raise ApprovalRefusedError(f"proposal {entry.proposal_id!r}: {message}") from exc
        except RPCError as exc:
            raise await self._ended_or(entry, exc) from exc
        except RuntimeError as exc:
            raise self._connect_error(entry, exc) from exc

    async def _ended_or(self, entry: InboxEntry, exc: RPCError) -> TwinopsError:
        """`_rpc_error`, except that a NOT_FOUND for a workflow that exists means it has just ended.

        An update racing the run's end (a late approve right after a rejection) is answered NOT_FOUND
        with a message that need not say "completed": asking Temporal tells an ended run (409, no
        longer pending) from an unknown one (404).
        """
        if exc.status != RPCStatusCode.NOT_FOUND or "completed" in exc.message:
            return self._rpc_error(entry, exc)
        try:
            described = await self.client.get_workflow_handle(entry.workflow_id).describe()
        except (RPCError, RuntimeError):
            return self._rpc_error(entry, exc)
        status = described.status.name.lower() if described.status is not None else "ending"
        return ApprovalRefusedError(
            f"proposal {entry.proposal_id!r} is no longer pending: its workflow has ended ({status})"
        )

    @staticmethod
    def _connect_error(entry: InboxEntry, exc: RuntimeError) -> Exception:
        """A lazily connected client that cannot connect raises a bare RuntimeError; name Temporal."""
        if "client connect" not in str(exc).lower():
            return exc
        return RuntimeUnavailableError(f"proposal {entry.proposal_id!r}: Temporal is unreachable ({str(exc)[:200]})")

    @staticmethod
    def _rpc_error(entry: InboxEntry, exc: RPCError) -> TwinopsError:
        if exc.status == RPCStatusCode.NOT_FOUND and "completed" in exc.message:
            return ApprovalRefusedError(
                f"proposal {entry.proposal_id!r} is no longer pending: its workflow has ended ({entry.status.value})"
            )
        if exc.status == RPCStatusCode.NOT_FOUND:
            return NotFoundError(f"proposal {entry.proposal_id!r}: workflow {entry.workflow_id!r} not found")
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return RuntimeUnavailableError(f"proposal {entry.proposal_id!r}: Temporal is unreachable ({exc.message})")
        return ApprovalRefusedError(f"proposal {entry.proposal_id!r}: {exc.message}")
