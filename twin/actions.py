"""Actions the twin (and a real estate) accepts. Applying one returns the action that undoes it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ScaleAction(_Action):
    """Set a node's replica count."""

    type: Literal["scale"] = "scale"
    node: str
    replicas: Annotated[int, Field(ge=0)]


class ShiftTrafficAction(_Action):
    """Set the ratios of some out-edges of `source` (targets not named keep theirs)."""

    type: Literal["shift_traffic"] = "shift_traffic"
    source: str
    ratios: dict[str, Annotated[float, Field(ge=0.0)]]


class RateLimitAction(_Action):
    """Cap what `node` admits, in requests per second; None removes the cap."""

    type: Literal["rate_limit"] = "rate_limit"
    node: str
    max_rps: Annotated[float, Field(ge=0.0)] | None


class RestartAction(_Action):
    """Restart a node: its replicas drain and come back; queued work is lost. Not compensable."""

    type: Literal["restart"] = "restart"
    node: str


Action = Annotated[
    ScaleAction | ShiftTrafficAction | RateLimitAction | RestartAction,
    Field(discriminator="type"),
]


def describe(action: ScaleAction | ShiftTrafficAction | RateLimitAction | RestartAction) -> str:
    """One line a human reads: `scale checkout -> 8`."""
    match action:
        case ScaleAction(node=n, replicas=r):
            return f"scale {n} -> {r}"
        case ShiftTrafficAction(source=s, ratios=ratios):
            return f"shift traffic from {s}: " + ", ".join(f"{t}={v:g}" for t, v in sorted(ratios.items()))
        case RateLimitAction(node=n, max_rps=m):
            return f"rate-limit {n} to {m:g} rps" if m is not None else f"remove rate limit on {n}"
        case RestartAction(node=n):
            return f"restart {n}"
    raise AssertionError(action)
