"""Pre-approving a scheduled playbook run: approvals given ahead of time, signed, stored, used once.

An approver pre-approves the run of playbook NAME at RUN_AT until EXPIRES. The service
authenticates the approver (API token or an already authenticated principal), checks the
approver role, loads the playbook as it is now (its version and content digest are what is
approved), and signs an approve over the grant's binding with the approval service's key.
Approvers of the same run join one grant, so a quorum can be gathered ahead of time. The
run claims the grant once (`SqlPreapprovalStore.claim`); its steps count the approvals through
the approval policy (quorum, groups, never the user who started a run by hand).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path

from controller.adapters.identity import Identities, Role, require
from controller.adapters.preapprovals import PreapprovalRecord, SqlPreapprovalStore
from controller.app.decision_signer import DecisionSigner
from controller.app.playbooks import find_playbook
from twinops import TwinopsError
from workflows.contracts import PreapprovalGrant, Principal
from workflows.decisions import MAX_PREAPPROVAL_WINDOW, PREAPPROVAL_EARLY
from workflows.playbook_contracts import playbook_digest

__all__ = ["PreapprovalError", "PreapprovalService"]


class PreapprovalError(TwinopsError):
    """A pre-approval that cannot be given as asked (times, window); the message says why."""


class PreapprovalService:
    """Give and list pre-approvals of playbook runs on behalf of an authenticated approver."""

    def __init__(
        self, store: SqlPreapprovalStore, identities: Identities, signer: DecisionSigner, playbooks_dir: Path
    ) -> None:
        self.store = store
        self.identities = identities
        self.signer = signer
        self.playbooks_dir = playbooks_dir

    async def principal_of(self, who: str | Principal) -> Principal:
        """The principal behind an API token, or `who` when the caller authenticated it already."""
        if isinstance(who, Principal):
            return who
        return await asyncio.to_thread(self.identities.resolve, who)

    async def preapprove(
        self,
        who: str | Principal,
        name: str,
        run_at: datetime,
        expires_at: datetime,
        comment: str = "",
        *,
        now: datetime | None = None,
    ) -> PreapprovalRecord:
        """Pre-approve the run of `name` at `run_at` until `expires_at` (joining an open grant for that run)."""
        principal = await self.principal_of(who)
        require(principal, Role.APPROVER, "to pre-approve playbook runs")
        now = now or datetime.now(UTC)
        for label, moment in (("--run-at", run_at), ("--expires", expires_at)):
            if moment.tzinfo is None:
                raise PreapprovalError(f"{label} {moment.isoformat()} has no time zone: write it with Z or +HH:MM")
        if run_at + PREAPPROVAL_EARLY <= now:
            raise PreapprovalError(f"--run-at {run_at.isoformat()} is in the past: pre-approve a run still to come")
        if expires_at <= run_at:
            raise PreapprovalError(
                f"--expires {expires_at.isoformat()} is not after --run-at {run_at.isoformat()}: the run would find "
                "it expired"
            )
        if expires_at - now > MAX_PREAPPROVAL_WINDOW:
            raise PreapprovalError(
                f"--expires {expires_at.isoformat()} is more than {MAX_PREAPPROVAL_WINDOW.days} days away: "
                "pre-approve nearer the run"
            )
        playbook = await asyncio.to_thread(find_playbook, name, self.playbooks_dir)
        digest = playbook_digest(playbook)
        run_at, expires_at = run_at.astimezone(UTC), expires_at.astimezone(UTC)
        record = await asyncio.to_thread(self.store.open_for_sync, playbook.name, playbook.version, digest, run_at)
        if record is None:
            grant = PreapprovalGrant(
                id=f"pa-{secrets.token_hex(8)}",
                playbook=playbook.name,
                version=playbook.version,
                playbook_digest=digest,
                run_at=run_at,
                expires_at=expires_at,
            )
            record = await asyncio.to_thread(self.store.create_sync, grant, principal.id)
        grant = record.grant
        signed = self.signer.sign(
            "approve", proposal_id=grant.subject, plan_hash=grant.binding(), principal=principal, text=comment
        )
        return await asyncio.to_thread(self.store.add_approval_sync, grant.id, signed, now)

    async def list(self, who: str | Principal, playbook: str | None = None) -> list[PreapprovalRecord]:
        """Pre-approvals (of `playbook`, when given), latest run first; any authenticated user may read them."""
        principal = await self.principal_of(who)
        require(principal, Role.VIEWER, "to read pre-approvals")
        return await asyncio.to_thread(self.store.list_sync, playbook)
