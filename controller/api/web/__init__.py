"""The web pages: sign-in, the queue, a proposal, history, a trail, users (server-rendered Jinja2)."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the pages and the static files to `app`."""
