"""Browser sign-in with OIDC (authorization code flow with PKCE) against the configured issuer."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
