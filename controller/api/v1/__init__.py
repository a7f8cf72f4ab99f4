"""The JSON API, version 1 (mounted under /api/v1): proposals, the audit trail, users, playbook runs, pre-approvals,
alerts and pushed snapshots.

Errors are RFC 9457 problem details (`controller.api.problems`); every route declares its
answer model and the problems it may answer, so `/openapi.json` is the whole contract.
"""

from __future__ import annotations

from fastapi import APIRouter

from controller.api.v1.audit import router as audit_router
from controller.api.v1.playbook_runs import router as playbook_runs_router
from controller.api.v1.preapprovals import router as preapprovals_router
from controller.api.v1.proposals import router as proposals_router
from controller.api.v1.twin_events import router as twin_events_router
from controller.api.v1.users import router as users_router

__all__ = ["router"]

router = APIRouter()
router.include_router(proposals_router)
router.include_router(audit_router)
router.include_router(users_router)
router.include_router(playbook_runs_router)
router.include_router(preapprovals_router)
router.include_router(twin_events_router)
