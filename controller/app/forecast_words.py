"""A proposal's demand forecast as JSON and in words, the same for every front end.

When the agent plans from a seasonal forecast, the target's belief carries it
(`NodeBelief.forecast`, an `agents.forecast.DemandOutlook`). `twinops plan --json` and the
JSON API's proposal detail show it as one object (`forecast_json`); `twinops plan` and the
proposal page say the forecast's sentence and what capacity is sized for (`sizing_words`), and
when the upper band crosses the target, if it does (`crossing_words`; the page gives that time
in full, in UTC). The API may not import the CLI, so the shape and the words live here, below both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agents.forecast import DemandOutlook

__all__ = ["crossing_words", "forecast_json", "forecast_line", "recorded_outlook", "sizing_words"]


def forecast_json(outlook: DemandOutlook | None) -> dict[str, Any] | None:
    """The forecast as the CLI's and the API's JSON object (times ISO 8601); None without one."""
    if outlook is None:
        return None
    return {
        "method": outlook.method,
        "days_of_history": round(outlook.days_of_history, 3),
        "band": round(outlook.band, 4),
        "window_seconds": round(outlook.window_seconds, 3),
        "current_rps": round(outlook.current_rps, 3),
        "peak_rps": round(outlook.peak_rps, 3),
        "peak_upper_rps": round(outlook.peak_upper_rps, 3),
        "peak_at": outlook.peak_at.isoformat(),
        "planning_rps": round(outlook.planning_rps, 3),
        "crossing_at": outlook.crossing_at.isoformat() if outlook.crossing_at is not None else None,
        "sentence": outlook.sentence(),
    }


def recorded_outlook(beliefs: Iterable[Any], node: str) -> DemandOutlook | None:
    """The forecast on `node`'s belief as recorded with a proposal (JSON dicts); None when absent or unreadable."""
    for belief in beliefs:
        if isinstance(belief, Mapping) and belief.get("node") == node:
            raw = belief.get("forecast")
            if not isinstance(raw, Mapping):
                return None
            try:
                return DemandOutlook.model_validate(raw)
            except ValidationError:
                return None  # recorded by a release whose outlook this one cannot read: no forecast shown
    return None


def sizing_words(forecast: Mapping[str, Any]) -> str:
    """'sized for 1,840 rps over the next 7 min (readiness + cool-down)'."""
    return (
        f"sized for {forecast['planning_rps']:,.0f} rps over the next "
        f"{forecast['window_seconds'] / 60:.0f} min (readiness + cool-down)"
    )


def crossing_words(forecast: Mapping[str, Any]) -> str | None:
    """'the upper band crosses the target at 14:05'; None when it does not within the window."""
    at = forecast.get("crossing_at")
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if not isinstance(at, datetime):
        return None
    return f"the upper band crosses the target at {at:%H:%M}"


def forecast_line(forecast: Mapping[str, Any]) -> str:
    """The forecast in one sentence: what is expected, what capacity is sized for, the crossing if any."""
    parts = [str(forecast["sentence"]), sizing_words(forecast)]
    if (crossing := crossing_words(forecast)) is not None:
        parts.append(crossing)
    return "; ".join(parts) + "."
