"""The one base of every message that crosses a workflow, an activity or a port.

Frozen (a message is a fact, never edited) and strict about field names (a typo is an
error, not silently dropped data). Messages only grow, with defaults: running workflows
hold older payloads in their histories (see CHANGELOG.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Message"]


class Message(BaseModel):
    """Base of workflow, activity and port messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")
