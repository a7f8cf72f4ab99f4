"""A decision racing the run's end is refused as no longer pending (409), not as an unknown proposal (404).

Seen in CI: a late approve right after a rejection got Temporal's NOT_FOUND with a message that did not
say "completed", and the page answered 404 for a proposal it had just shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from controller.app.approval_service import ApprovalRefusedError, ApprovalService
from controller.core.errors import NotFoundError
from workflows.ports import InboxEntry, InboxStatus

ENTRY = InboxEntry(
    proposal_id="p-1",
    workflow_id="remediation-p-1",
    twin_id="shop",
    status=InboxStatus.PENDING,
    risk="low",
    target="api",
    summary="",
    created_at=datetime(2026, 12, 1, tzinfo=UTC),
)


class _Handle:
    def __init__(self, exists: bool) -> None:
        self.exists = exists

    async def describe(self) -> Any:
        if not self.exists:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        return SimpleNamespace(status=WorkflowExecutionStatus.COMPLETED)


def _service(exists: bool) -> Any:
    client = SimpleNamespace(get_workflow_handle=lambda _wid: _Handle(exists))
    return SimpleNamespace(client=client, _rpc_error=ApprovalService._rpc_error)


async def test_a_not_found_for_a_workflow_that_exists_is_no_longer_pending() -> None:
    exc = RPCError("workflow not found for ID: remediation-p-1", RPCStatusCode.NOT_FOUND, b"")
    error = await ApprovalService._ended_or(_service(exists=True), ENTRY, exc)
    assert isinstance(error, ApprovalRefusedError) and "no longer pending" in str(error) and "completed" in str(error)


async def test_a_not_found_for_a_workflow_that_does_not_exist_is_unknown() -> None:
    exc = RPCError("workflow not found for ID: remediation-p-1", RPCStatusCode.NOT_FOUND, b"")
    error = await ApprovalService._ended_or(_service(exists=False), ENTRY, exc)
    assert isinstance(error, NotFoundError)


@pytest.mark.parametrize("status", [RPCStatusCode.UNAVAILABLE, RPCStatusCode.INVALID_ARGUMENT])
async def test_other_errors_are_as_before(status: RPCStatusCode) -> None:
    exc = RPCError("boom", status, b"")
    error = await ApprovalService._ended_or(_service(exists=True), ENTRY, exc)
    assert type(error) is type(ApprovalService._rpc_error(ENTRY, exc))
