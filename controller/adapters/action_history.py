"""`LedgerActionHistory`: the `ActionHistory` port read from the audit ledger's step events.

The moment-of-action check counts what really started on the estate since the proposal
was made, including other remediations' steps, not only what the agent loop knew then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from controller.adapters.audit import SqlAuditLedger
from workflows.audit import EventKind
from workflows.policy import ActionRecord

__all__ = ["LedgerActionHistory"]


class LedgerActionHistory:
    """Recent `step_started` events on given nodes, as the safety policy's action history."""

    def __init__(self, ledger: SqlAuditLedger) -> None:
        self._ledger = ledger

    async def actions_since(self, nodes: Sequence[str], since: datetime) -> list[ActionRecord]:
        """Actions started on any of `nodes` at or after `since`, oldest first."""
        return await asyncio.to_thread(self._read, tuple(nodes), since)

    def _read(self, nodes: tuple[str, ...], since: datetime) -> list[ActionRecord]:
        found: list[ActionRecord] = []
        wanted = set(nodes)
        for record in self._ledger.query(kind=EventKind.STEP_STARTED, since=since):
            action = record.payload.get("action") or {}
            node = action.get("node")
            if node not in wanted:
                continue
            try:
                found.append(
                    ActionRecord(
                        at=record.time,
                        node=node,
                        action_type=action.get("type"),
                        plan_hash=str((record.payload.get("details") or {}).get("plan_hash", "")),
                        outcome="executed",
                    )
                )
            except ValidationError:
                continue  # an action type the policy does not rate-limit
        return found
