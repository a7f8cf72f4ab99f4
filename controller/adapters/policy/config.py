"""The schema of `data.twinops.config` (policies/data.json): every setting the rules read, typed.

A setting that is missing or of the wrong type would leave its Rego rule undefined,
and an undefined deny rule allows. So the loader refuses such a bundle, naming the
setting, and the Rego side checks the same settings again on every decision
(policies/twinops/config_check), which is what holds on an OPA server.
The two lists are kept equal by tests/controller/adapters/policy/test_config.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.core.errors import PolicyConfigError

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Name = Annotated[str, Field(min_length=1)]
Groups = Annotated[list[Name], Field(min_length=1)]
RiskLevel = Literal["low", "medium", "high"]

# RFC 3339 with a zone, as Rego's time.parse_rfc3339_ns needs it (the Rego check uses the same pattern).
RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$")


class _Config(BaseModel):
    # strict: "120" is not 120; forbid: a misspelt optional key is an error, not a silent default.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class RateLimit(_Config):
    """At most `max_actions` actions per node in `window_minutes`."""

    max_actions: Count
    window_minutes: NonNegative


class LoopBreaker(_Config):
    """A plan that failed verification `max_failed_verifications` times in `window_hours` escalates."""

    max_failed_verifications: Count
    window_hours: NonNegative


class MinRiskByAction(_Config):
    """The least risk of each action type."""

    scale: RiskLevel
    rate_limit: RiskLevel
    shift_traffic: RiskLevel
    restart: RiskLevel


class Risk(_Config):
    """Blast-radius thresholds and per-action risk floors."""

    medium_blast_radius: Fraction
    high_blast_radius: Fraction
    min_by_action: MinRiskByAction


class ScaleDownLowRisk(_Config):
    """A small scale-down, low risk whatever its blast radius: every action a scale to fewer replicas,
    each removing at most `max_step_replicas` and at most max(1, floor(`max_step_fraction` x the node's
    replicas)), every node in one of `tiers`. No tiers, or `max_step_replicas` 0, turns it off."""

    tiers: list[str]
    max_step_fraction: Fraction
    max_step_replicas: Count


class ApprovalsByRisk(_Config):
    """Approvals needed at each risk level (at least one: no approval at all is what auto_approve says)."""

    low: Positive
    medium: Positive
    high: Positive


class NeverAutoApprove(_Config):
    """Tiers, kinds and node ids that always wait for a human."""

    tiers: list[str]
    kinds: list[str]
    nodes: list[str]


class AutoApproveRequesters(_Config):
    """Requester kinds and ids whose low-risk proposals may auto-approve."""

    kinds: list[str]
    ids: list[str]


class FreezeWindow(_Config):
    """A change freeze [start, end), with its own quorum for approvals made inside it."""

    name: Name
    start: str
    end: str
    required_approvals: Count | None = None
    approver_groups: Groups | None = None

    @field_validator("required_approvals", "approver_groups", mode="before")
    @classmethod
    def _absent_not_null(cls, value: Any) -> Any:
        # Leave the key out to use the default; a null is a mistake (the Rego check says so too).
        if value is None:
            raise ValueError("leave the setting out instead of setting it to null")
        return value

    @field_validator("start", "end")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        if not RFC3339.fullmatch(value):
            raise ValueError(f"{value!r} is not an RFC 3339 time with a zone, e.g. 2025-12-24T00:00:00Z")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if datetime.fromisoformat(self.end.replace("Z", "+00:00")) <= datetime.fromisoformat(
            self.start.replace("Z", "+00:00")
        ):
            raise ValueError(f"end {self.end} is not after start {self.start}")
        return self


class SafetyConfig(_Config):
    """data.twinops.config.safety."""

    max_twin_age_seconds: NonNegative
    max_replicas_per_node: Count
    max_total_replicas: Count
    max_scale_factor: Annotated[float, Field(ge=1)]
    max_scale_increment: Count
    rate_limit: RateLimit
    loop_breaker: LoopBreaker
    risk: Risk
    scale_down_low_risk: ScaleDownLowRisk
    non_compensable_actions: list[str]
    unactionable_kinds: list[str]
    protected_restart_kinds: dict[str, Count]
    approvals_by_risk: ApprovalsByRisk
    freeze_min_approvals: Count
    never_auto_approve: NeverAutoApprove
    auto_approve_requesters: AutoApproveRequesters
    freeze_windows: list[FreezeWindow]


class GroupsByAction(_Config):
    """Approver groups (principal roles) for each action type."""

    scale: Groups
    rate_limit: Groups
    shift_traffic: Groups
    restart: Groups


class ApprovalConfig(_Config):
    """data.twinops.config.approval."""

    groups_by_action: GroupsByAction
    high_risk_min_distinct_approvers: Count
    unowned_fallback_group: Name


class PolicyConfig(_Config):
    """data.twinops.config: the tunables of the safety and approval policies."""

    safety: SafetyConfig
    approval: ApprovalConfig


def _setting(loc: tuple[int | str, ...]) -> str:
    # ("safety", "freeze_windows", 0, "start") -> "safety.freeze_windows[0].start"; dict keys stay dotted.
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _json_type(value: Any) -> str:
    for kind, name in ((type(None), "null"), (bool, "boolean"), (str, "string"), (dict, "object"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "number" if isinstance(value, int | float) else type(value).__name__


def _problem(error: Any) -> str:
    if error["type"] == "missing":
        return "is absent"
    if error["type"] == "extra_forbidden":
        return "is not a known setting"
    value, kind = error.get("input"), _json_type(error.get("input"))
    text = json.dumps(value, default=str)[:40]
    return f"is {text if kind in ('null', 'boolean') else f'{kind} {text}'}: {error['msg']}"


def validate_config(data: dict[str, Any], *, where: str = "data.json") -> PolicyConfig:
    """Check `data.twinops.config` of a bundle's merged data; raise PolicyConfigError naming the setting."""
    config = data.get("twinops", {}).get("config") if isinstance(data.get("twinops"), dict) else None
    if config is None:
        raise PolicyConfigError(
            ["twinops.config"], f"{where}: setting twinops.config is absent (the policies read every setting there)"
        )
    try:
        return PolicyConfig.model_validate(config)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        settings = [_setting(tuple(e["loc"])) for e in errors]
        first = f"setting {'.'.join(['twinops.config', settings[0]]).rstrip('.')} {_problem(errors[0])}"
        more = f" (and {len(settings) - 1} more: {', '.join(settings[1:6])})" if len(settings) > 1 else ""
        raise PolicyConfigError(settings, f"{where}: {first}{more}") from exc
