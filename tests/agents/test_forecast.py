"""Demand forecasts on synthetic series with known answers (agents/forecast.py)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from agents.forecast import BAND_FLOOR, DAY, DemandHistory, DemandRecorder, forecast_node

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
T0 = START.timestamp()
TICK = 60.0


def diurnal(t: float) -> float:
    """700 +- 500 rps, lowest at 02:00, highest at 14:00."""
    return 700.0 + 500.0 * math.sin(2 * math.pi * (t - T0 - 28800.0) / DAY)


def record(
    truth: Callable[[float], float],
    days: float,
    *,
    noise: float = 0.0,
    skip: Callable[[float], bool] = lambda t: False,
    seed: int = 1,
) -> DemandHistory:
    rng = random.Random(seed)
    rec = DemandRecorder()
    t = T0
    while t < T0 + days * DAY:
        if not skip(t):
            rec.record(t, {"api": truth(t) * (1.0 + noise * rng.gauss(0.0, 1.0))})
        t += TICK
    return rec.history()


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def worst_error(history: DemandHistory, now: datetime, truth: Callable[[float], float], horizon: float = 1800) -> float:
    f = forecast_node("api", history, now, current=truth(now.timestamp()), horizon_seconds=horizon)
    assert f is not None
    return max(abs(p.mean - truth(p.at.timestamp())) / truth(p.at.timestamp()) for p in f.points)


def test_pure_seasonality_is_forecast_from_the_same_time_on_past_days() -> None:
    history = record(diurnal, 7)
    now = at(7 + 10 / 24)  # 10:00 on day 8, load rising fast
    f = forecast_node("api", history, now, current=diurnal(now.timestamp()), horizon_seconds=1800)
    assert f is not None and f.method == "seasonal_daily"
    assert worst_error(history, now, diurnal) < 0.01
    assert f.band == pytest.approx(BAND_FLOOR)
    assert f.level == pytest.approx(1.0, abs=0.01)


def test_trend_plus_seasonality_is_followed_by_the_level() -> None:
    def growing(t: float) -> float:
        return diurnal(t) * (1.0 + 0.05 * (t - T0) / DAY)  # 5% more every day

    history = record(growing, 7)
    for hours in (3, 10, 14, 20):
        now = at(7 + hours / 24)
        assert worst_error(history, now, growing) < 0.03, hours


def test_a_missing_hour_is_bridged_not_read_as_zero() -> None:
    def gap(t: float) -> bool:
        return T0 + 6 * DAY + 9 * 3600 <= t < T0 + 6 * DAY + 10 * 3600 or t >= T0 + 7 * DAY - 3600

    history = record(diurnal, 7, skip=gap)
    now = at(7)  # the last hour is missing: the level comes from the hours before it
    f = forecast_node("api", history, now, current=None, horizon_seconds=1800)
    assert f is not None and f.method == "seasonal_daily"
    assert min(p.mean for p in f.points) > 0
    assert worst_error(history, now, diurnal) < 0.03
    # Yesterday's missing 09:00 hour: the other days carry the profile.
    assert worst_error(history, at(6 + 9 / 24 + 1 / 24 / 2 + 1), diurnal) < 0.03


def test_a_one_off_spike_does_not_become_the_forecast() -> None:
    def spiky(t: float) -> float:
        spike = T0 + 6 * DAY + 12 * 3600 <= t < T0 + 6 * DAY + 12 * 3600 + 900  # yesterday 12:00-12:15, +100%
        return diurnal(t) * (2.0 if spike else 1.0)

    history = record(spiky, 7)
    now = at(7 + 11.9 / 24)
    assert worst_error(history, now, diurnal) < 0.01

    def spike_now(t: float) -> float:
        return diurnal(t) * (2.0 if T0 + 7 * DAY + 11 * 3600 + 2700 <= t < T0 + 7 * DAY + 12 * 3600 else 1.0)

    # A spike in the last hour (a quarter of it) does not move the level either.
    history = record(spike_now, 7 + 12 / 24)
    now = at(7 + 12 / 24)
    f = forecast_node("api", history, now, current=diurnal(now.timestamp()), horizon_seconds=1800)
    assert f is not None and f.level == pytest.approx(1.0, abs=0.01)


def test_weekly_seasonality_is_used_when_a_week_predicts_better() -> None:
    def week(t: float) -> float:
        weekend = datetime.fromtimestamp(t, UTC).weekday() >= 5
        return diurnal(t) * (0.5 if weekend else 1.0)

    history = record(week, 14)  # two weeks: Monday 2 Nov to Sunday 15 Nov
    saturday = at(12 + 10 / 24)  # Saturday 14 Nov, 10:00: yesterday was a weekday
    f = forecast_node("api", history, saturday, current=week(saturday.timestamp()), horizon_seconds=1800)
    assert f is not None and f.method == "seasonal_weekly"
    assert worst_error(history, saturday, week) < 0.03


def test_under_a_day_of_history_the_trend_is_projected() -> None:
    def ramp(t: float) -> float:
        return 100.0 + 0.05 * (t - T0)

    history = record(ramp, 0.25)
    now = at(0.25)
    f = forecast_node("api", history, now, current=ramp(now.timestamp()), horizon_seconds=600)
    assert f is not None and f.method == "trend"
    assert f.points[-1].mean == pytest.approx(ramp(now.timestamp() + 600), rel=0.01)


def test_the_band_covers_the_noise_it_was_measured_on() -> None:
    history = record(diurnal, 7, noise=0.05, seed=3)
    rng = random.Random(9)
    inside = total = 0
    for k in range(48):
        now = at(6 + k / 48)
        t = now.timestamp()
        f = forecast_node("api", history, now, current=diurnal(t), horizon_seconds=600)
        assert f is not None and f.method == "seasonal_daily"
        assert f.band > BAND_FLOOR
        p = f.points[-1]
        actual = diurnal(p.at.timestamp()) * (1.0 + 0.05 / math.sqrt(5) * rng.gauss(0.0, 1.0))
        inside += p.lower <= actual <= p.upper
        total += 1
    assert inside / total >= 0.9


def test_no_history_and_no_level_is_no_forecast() -> None:
    assert forecast_node("api", DemandHistory(), at(1), current=None) is None


def test_the_recorder_keeps_means_ignores_retries_and_prunes() -> None:
    rec = DemandRecorder(bucket_seconds=300, retention_seconds=DAY)
    assert rec.record(T0 + 10, {"a": 10.0, "b": -1.0, "c": math.nan}) == 1
    assert rec.record(T0 + 10, {"a": 99.0}) == 0  # the same observation again: a retried activity
    assert rec.record(T0 + 5, {"a": 99.0}) == 0  # older than the last one
    rec.record(T0 + 70, {"a": 20.0})
    assert rec.history().of("a") == ((T0, 15.0),)
    rec.record(T0 + 2 * DAY, {"a": 1.0})
    assert [t for t, _ in rec.history().of("a")] == [T0 + 2 * DAY]
    with pytest.raises(ValueError, match="positive"):
        DemandRecorder(bucket_seconds=0)


def test_history_that_stopped_a_day_ago_is_not_seasonal() -> None:
    history = record(diurnal, 6)  # nothing recorded in the last day (a store that was down)
    now = at(7 + 10 / 24)
    f = forecast_node("api", history, now, current=diurnal(now.timestamp()), horizon_seconds=600)
    assert f is not None and f.method == "trend"
