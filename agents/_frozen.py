"""The base of every agents/ model: frozen, strict about unknown fields, no NaN."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable pydantic model; agents/ state is never mutated in place, only replaced."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
