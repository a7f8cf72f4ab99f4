"""The root of the exception tree drawn in `controller.errors`."""

from __future__ import annotations


class TwinopsError(Exception):
    """Base of every error twinops raises on purpose."""
