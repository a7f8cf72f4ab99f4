"""The JSON API, version 1 (mounted under /api/v1)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
