"""Request bodies and answers of the v1 API (the read model of proposals is `controller.api.views`).

Bodies forbid unknown fields, so a misspelt `reason` is a 422 naming it rather than a
rejection without one. Answers are the contract the CLI, the pages and scripts rely on:
fields only grow.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.adapters.identity import Role, User
from workflows.audit import AuditRecord

__all__ = [
    "ApprovalAnswer",
    "ApproveBody",
    "AuditHead",
    "CancelAnswer",
    "NewUserAnswer",
    "NewUserBody",
    "ReasonBody",
    "RevokedAnswer",
    "TokenAnswer",
    "Trail",
    "UserView",
]

_TEXT_MAX = 2000
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApproveBody(_Body):
    """An approval, with an optional comment (kept in the audit trail)."""

    comment: str = Field("", max_length=_TEXT_MAX)


class ReasonBody(_Body):
    """A rejection or a cancel: the reason is required (it goes into the audit trail)."""

    reason: str = Field(min_length=1, max_length=_TEXT_MAX, description="Why, in words; not blank.")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reason is required and must not be blank")
        return value.strip()


class ApprovalAnswer(BaseModel):
    """What an approval or a rejection did: whether it counted and what the quorum still needs."""

    proposal_id: str
    counted: bool = Field(description="Whether the approval policy counted this approval (false for a rejection).")
    quorum_met: bool
    approvals: list[str] = Field(description="Approvals counted so far, by approver id.")
    still_needed: int
    reasons: list[str] = Field(
        description="Why it did not count, or what the quorum still lacks, in the policy's words."
    )
    sentence: str = Field(description="The same, in one sentence for a person.")


class CancelAnswer(BaseModel):
    """A cancel was accepted: the workflow stops and compensates what it ran."""

    proposal_id: str
    status: Literal["cancellation_requested"] = "cancellation_requested"
    sentence: str


class Trail(BaseModel):
    """Every audit event of one remediation, in log order."""

    remediation_id: str
    events: list[AuditRecord]


class AuditHead(BaseModel):
    """The newest signed tree head of the audit log, and the key that verifies it."""

    origin: str
    tree_size: int
    root_hash: str
    time: datetime
    checkpoint: str = Field(description="The signed note (C2SP tlog-checkpoint) text.")
    verifier_key: str = Field(description="The signed-note verifier key: <name>+<key id>+<base64 key>.")


class UserView(BaseModel):
    """A user as an admin sees it (never with a token)."""

    name: str
    role: Role
    team: str | None
    groups: list[str]
    created_at: datetime
    disabled: bool
    active_tokens: int
    last_used_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserView:
        """The view of a stored user."""
        return cls(
            name=user.name,
            role=user.role,
            team=user.team,
            groups=list(user.groups),
            created_at=user.created_at,
            disabled=user.disabled,
            active_tokens=user.active_tokens,
            last_used_at=user.last_used_at,
        )


class NewUserBody(_Body):
    """A user to add: name, role, team, approver groups."""

    name: str = Field(pattern=_NAME_PATTERN, description="1-100 letters, digits, '.', '_', '@' or '-'.")
    role: Role = Role.VIEWER
    team: str | None = Field(None, max_length=100)
    groups: list[str] = Field(
        default_factory=list, max_length=50, description="Approver groups (sre, dba, ...); not role names."
    )

    @field_validator("groups")
    @classmethod
    def _groups_are_not_roles(cls, groups: list[str]) -> list[str]:
        roles = [g for g in groups if g.lower() in {r.value for r in Role}]
        if roles:
            raise ValueError(f"group {roles[0]!r} is a role name; give the role in `role`")
        bad = [g for g in groups if not re.fullmatch(_NAME_PATTERN, g)]
        if bad:
            raise ValueError(f"group name {bad[0]!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
        return groups


class NewUserAnswer(BaseModel):
    """The user just added and its first API token (shown once, never again)."""

    user: UserView
    token: str


class TokenAnswer(BaseModel):
    """A new API token (shown once)."""

    token: str


class RevokedAnswer(BaseModel):
    """How many valid tokens of a user were revoked."""

    user: str
    revoked: int
