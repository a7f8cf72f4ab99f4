"""A proposal's forecast as JSON and in words, read back from what the audit trail recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.forecast import DemandOutlook
from controller.app.forecast_words import (
    crossing_words,
    forecast_json,
    forecast_line,
    recorded_outlook,
    sizing_words,
)

AT = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
OUTLOOK = DemandOutlook(
    method="seasonal_weekly",
    days_of_history=9.0,
    band=0.06,
    window_seconds=420.0,
    current_rps=1700.0,
    peak_rps=1840.0,
    peak_upper_rps=1950.4,
    peak_at=AT + timedelta(minutes=10),
    planning_rps=1950.4,
    crossing_at=AT + timedelta(minutes=4),
)


def test_the_json_and_the_words() -> None:
    shown = forecast_json(OUTLOOK)
    assert shown is not None and forecast_json(None) is None
    assert shown["peak_at"] == "2026-11-21T14:10:00+00:00" and shown["crossing_at"] == "2026-11-21T14:04:00+00:00"
    assert (
        shown["sentence"] == "peak of 1,840 rps expected at 14:10, +/- 6% (weekly seasonal forecast, 9 days of history)"
    )
    assert sizing_words(shown) == "sized for 1,950 rps over the next 7 min (readiness + cool-down)"
    assert crossing_words(shown) == "the upper band crosses the target at 14:04"
    assert forecast_line(shown) == f"{shown['sentence']}; {sizing_words(shown)}; {crossing_words(shown)}."
    calm = forecast_json(OUTLOOK.model_copy(update={"crossing_at": None}))
    assert calm is not None and calm["crossing_at"] is None and crossing_words(calm) is None
    assert forecast_line(calm) == f"{calm['sentence']}; {sizing_words(calm)}."


def test_the_recorded_forecast_is_read_back_or_left_out() -> None:
    recorded = [{"node": "web"}, {"node": "checkout", "forecast": OUTLOOK.model_dump(mode="json")}]
    assert recorded_outlook(recorded, "checkout") == OUTLOOK
    assert recorded_outlook(recorded, "web") is None and recorded_outlook(recorded, "nowhere") is None
    # A forecast this release cannot read (a future shape) costs the forecast, never the page.
    unreadable = [{"node": "checkout", "forecast": {"method": "crystal_ball"}}, "not a belief"]
    assert recorded_outlook(unreadable, "checkout") is None
