"""What one API process holds: settings, the stores, the approval service, the OIDC verifier, limits.

Only this process holds credentials to Temporal and the database; browsers and the CLI hold
an API token or a session cookie. Built once at start-up (`ApiContext.open`) and closed at
shut-down; handlers reach it through `context_of(request)`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy import Engine

from controller.adapters.audit import LedgerReader
from controller.adapters.identity import Identities
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.playbook_runs import SqlPlaybookRunStore
from controller.adapters.preapprovals import SqlPreapprovalStore
from controller.adapters.sessions import SqlSessions
from controller.app.approval_service import ApprovalService
from controller.app.decision_signer import DecisionSigner
from controller.app.preapprovals import PreapprovalService
from controller.core.db import create_engine, migrate
from controller.core.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from controller.adapters.oidc import OidcVerifier

__all__ = ["ApiContext", "SignInLimiter", "context_of"]


class SignInLimiter:
    """Failed sign-ins per client address in a sliding window; over the limit, sign-in is refused.

    Per process: with several replicas behind a balancer each keeps its own count, so the
    effective limit is the per-replica limit times the replicas a client reaches.
    """

    def __init__(self, limit: int = 5, window_seconds: float = 300.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None when it may try now."""
        now = time.monotonic()
        q = self._recent(client, now)
        if len(q) < self.limit:
            if not q:
                self._failures.pop(client, None)
            return None
        return max(1.0, q[0] + self.window - now)

    def failed(self, client: str) -> None:
        """Count one failed sign-in of `client`."""
        self._recent(client, time.monotonic()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        self._failures.pop(client, None)


@dataclass
class ApiContext:
    """The stores and services every request uses."""

    settings: Settings
    engine: Engine
    inbox: SqlApprovalInbox
    identities: Identities
    sessions: SqlSessions
    signer: DecisionSigner
    client: Client
    approvals: ApprovalService
    oidc: OidcVerifier | None = None
    limiter: SignInLimiter = field(default_factory=SignInLimiter)
    session_ttl: timedelta = timedelta(hours=8)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def open(cls, settings: Settings, *, client: Client | None = None) -> ApiContext:
        """Connect to the database (migrated) and Temporal, load the approval key and the OIDC settings."""
        from controller.adapters.temporal_server import connect

        engine = create_engine(settings.resolved_database_url)
        await asyncio.to_thread(migrate, engine)
        inbox = SqlApprovalInbox(engine)
        identities = Identities(engine)
        signer = DecisionSigner.from_settings(settings)
        client = client or await connect(settings, lazy=True)
        oidc = None
        if settings.oidc_issuer:
            from controller.adapters.oidc import OidcVerifier

            oidc = OidcVerifier.from_settings(settings)
        return cls(
            settings=settings,
            engine=engine,
            inbox=inbox,
            identities=identities,
            sessions=SqlSessions(engine),
            signer=signer,
            client=client,
            approvals=ApprovalService(client, inbox, identities, signer),
            oidc=oidc,
            session_ttl=timedelta(seconds=settings.session_ttl_seconds),
        )

    def ledger(self) -> LedgerReader:
        """A reader of the audit ledger (cached: opening one reads the verifier key)."""
        reader = self.extras.get("ledger")
        if reader is None:
            reader = self.extras["ledger"] = LedgerReader.open(self.settings)
        assert isinstance(reader, LedgerReader)
        return reader

    def playbook_runs(self) -> SqlPlaybookRunStore:
        """The store of playbook run reports, over this context's engine (cached)."""
        store = self.extras.get("playbook_runs")
        if store is None:
            store = self.extras["playbook_runs"] = SqlPlaybookRunStore(self.engine)
        assert isinstance(store, SqlPlaybookRunStore)
        return store

    def preapprovals(self) -> PreapprovalService:
        """The pre-approval service over this context's engine, signing with the approval service's key (cached)."""
        service = self.extras.get("preapprovals")
        if service is None:
            # The approval service's own signer instance: a pre-approval is an approval it issued.
            store = SqlPreapprovalStore(self.engine)
            service = PreapprovalService(store, self.identities, self.approvals.signer, self.settings.playbooks_dir)
            self.extras["preapprovals"] = service
        assert isinstance(service, PreapprovalService)
        return service

    async def close(self) -> None:
        """Release the database pool (the Temporal client closes with its runtime)."""
        self.engine.dispose()


def context_of(request: Request) -> ApiContext:
    """The context the application was built with."""
    ctx = request.app.state.context
    assert isinstance(ctx, ApiContext)
    return ctx
