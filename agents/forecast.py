"""Demand forecasting: per node, offered demand over the coming minutes with an uncertainty band.

Pure and deterministic (no I/O, no clock): the history and the moment arrive as arguments.

History is a downsampled series per node: the mean offered demand of each `bucket_seconds`
bucket (5 minutes by default), kept for two weeks by the controller's store
(controller/adapters/demand_history.py) or built in memory by `DemandRecorder`.

Method, chosen per node from what its history allows:

- **seasonal** (at least `MIN_SEASONAL_DAYS` of history): seasonal naive with level correction.
  The seasonal value at a time t is the median, over the past days, of the series at the same
  time of day (each day's value itself the median of the five buckets around it, so a spike of
  ten minutes on one day never becomes the profile). With more than a week of history the same
  is done with the same time of the week (weekly seasonality), and whichever of the two
  predicted the last day better is used. The level is the median ratio of the last hour's actuals
  to their seasonal values: a day that runs 20% hot is forecast 20% hot, and a one-off spike in
  that hour (a minority of its buckets) does not move it.
- **trend** (less history): the robust Theil-Sen trend of the recent buckets (agents/trend.py)
  from the current level, the method the agent always had.

The band is the 95th percentile of the relative errors the same method made over the last
day, at the same lead (a backtest on the history itself), never under `BAND_FLOOR`; with too few
errors to measure it is `BAND_UNMEASURED`. Forecasts are of offered demand, the quantity beliefs
compute through the graph; planning takes the upper band (agents/planner.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median
from typing import Literal

from pydantic import AwareDatetime

from agents._frozen import Frozen
from agents.trend import theil_sen_slope

DAY = 86400.0
WEEK = 7 * DAY
BUCKET_SECONDS = 300.0
"""Width of a history bucket (the store's default)."""
RETENTION_SECONDS = 14 * DAY
"""How much history the store keeps by default (two weekly cycles)."""
MIN_SEASONAL_DAYS = 1.0
"""Daily seasonality needs a day of history (the same time yesterday must exist)..."""
STALE_HISTORY_SECONDS = DAY
"""...whose newest bucket is less than this old: history that stopped cannot vouch for today."""
MIN_WEEKLY_DAYS = 8.0
"""Weekly seasonality needs the same time a week ago and a day of errors to judge it by."""
MAX_SEASONS = 14
"""Past days (or weeks) whose values the seasonal median is taken over."""
LEVEL_WINDOW_SECONDS = 3600.0
"""The level is read off the last hour of actuals against their seasonal values."""
LEVEL_FALLBACK_SECONDS = 6 * 3600.0
"""A gap in the last hour (a missing hour) widens the level window up to this."""
BAND_WINDOW_SECONDS = DAY
"""The band is measured on the errors of the last day."""
BAND_QUANTILE = 0.95
BAND_FLOOR = 0.02
"""Narrowest band (relative half-width): measurement noise of a five-minute mean."""
BAND_UNMEASURED = 0.15
"""Band used when fewer than `MIN_BAND_ERRORS` errors could be measured."""
BAND_CAP = 1.0
MIN_BAND_ERRORS = 12
SMOOTH_BUCKETS = 2
"""Each day's seasonal value is the median of the buckets within this many of the time."""
STEP_SECONDS = 60.0
LEAD_EXTRA = 1
"""The backtest's lead is one bucket more than the horizon's: a forecast reads its level from the last
whole bucket, so it reaches that much further than the horizon from now."""
"""Spacing of forecast points."""

Method = Literal["seasonal_daily", "seasonal_weekly", "trend"]


# ---- history -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemandHistory:
    """Per-node offered demand in fixed buckets: node -> ((bucket start, epoch seconds; mean rps), ...).

    Points are sorted by time; a missing bucket is simply absent (a gap is unknown, not zero).
    """

    series: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    bucket_seconds: float = BUCKET_SECONDS

    def of(self, node: str) -> tuple[tuple[float, float], ...]:
        """The node's points (empty when it has none)."""
        return self.series.get(node, ())

    def span_days(self, node: str) -> float:
        """Days between the node's first bucket and the end of its last."""
        pts = self.of(node)
        if not pts:
            return 0.0
        return (pts[-1][0] + self.bucket_seconds - pts[0][0]) / DAY

    def __len__(self) -> int:
        return sum(len(v) for v in self.series.values())


class DemandRecorder:
    """An in-memory store of bucketed demand, the same semantics as the SQL store.

    Each bucket keeps the mean of the observations recorded in it; an observation not newer
    than the last one recorded for that node is ignored (a retried activity records nothing
    twice). Buckets older than `retention_seconds` before the newest observation are pruned.
    """

    def __init__(self, bucket_seconds: float = BUCKET_SECONDS, retention_seconds: float = RETENTION_SECONDS) -> None:
        if not bucket_seconds > 0 or not retention_seconds > 0:
            raise ValueError("bucket_seconds and retention_seconds must be positive")
        self.bucket_seconds = bucket_seconds
        self.retention_seconds = retention_seconds
        self._sums: dict[str, dict[int, list[float]]] = {}
        self._last: dict[str, float] = {}
        self._newest = -math.inf

    def record(self, at: datetime | float, demand: Mapping[str, float]) -> int:
        """Add one observation per node (finite, >= 0 values only); return how many were kept."""
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        kept = 0
        k = math.floor(t / self.bucket_seconds)
        for node, value in demand.items():
            if value is None or not math.isfinite(value) or value < 0 or t <= self._last.get(node, -math.inf):
                continue
            cell = self._sums.setdefault(node, {}).setdefault(k, [0.0, 0.0])
            cell[0] += value
            cell[1] += 1.0
            self._last[node] = t
            kept += 1
        if t > self._newest:
            self._newest = t
            self._prune()
        return kept

    def _prune(self) -> None:
        oldest = math.floor((self._newest - self.retention_seconds) / self.bucket_seconds)
        for buckets in self._sums.values():
            for k in [k for k in buckets if k < oldest]:
                del buckets[k]

    def history(self, nodes: Iterable[str] | None = None) -> DemandHistory:
        """What is recorded (of `nodes`, default all), as an immutable `DemandHistory`."""
        b = self.bucket_seconds
        wanted = self._sums.keys() if nodes is None else [n for n in nodes if n in self._sums]
        return DemandHistory(
            series={
                node: tuple((k * b, s / n) for k, (s, n) in sorted(self._sums[node].items()) if n > 0)
                for node in wanted
            },
            bucket_seconds=b,
        )


# ---- forecasts -----------------------------------------------------------------------------


class ForecastPoint(Frozen):
    """Forecast demand at one moment: expected value and band."""

    at: AwareDatetime
    mean: float
    lower: float
    upper: float


class NodeForecast(Frozen):
    """A node's demand forecast from `made_at` over the horizon, and how it was made."""

    node: str
    method: Method
    made_at: AwareDatetime
    days_of_history: float
    band: float
    """Relative half-width of the band (0.06 = +/- 6%)."""
    level: float = 1.0
    """Seasonal methods: how the recent actuals run against their seasonal values (1.2 = 20% hot)."""
    points: tuple[ForecastPoint, ...]

    def window(self, start: datetime, end: datetime) -> tuple[ForecastPoint, ...]:
        """The points within [start, end] (at least the first point, the forecast for now)."""
        inside = tuple(p for p in self.points if start <= p.at <= end)
        return inside or self.points[:1]

    def peak(self, start: datetime, end: datetime) -> ForecastPoint:
        """The point with the highest upper band within [start, end] (the earliest of equals)."""
        return max(self.window(start, end), key=lambda p: (p.upper, -p.at.timestamp()))

    def at_time(self, t: datetime) -> ForecastPoint:
        """The forecast at `t`: linear between points, the end point outside them."""
        pts = self.points
        if t <= pts[0].at:
            return pts[0]
        for a, b in itertools.pairwise(pts):
            if a.at <= t <= b.at:
                span = (b.at - a.at).total_seconds()
                w = (t - a.at).total_seconds() / span if span > 0 else 0.0
                return ForecastPoint(
                    at=t,
                    mean=a.mean + w * (b.mean - a.mean),
                    lower=a.lower + w * (b.lower - a.lower),
                    upper=a.upper + w * (b.upper - a.upper),
                )
        return pts[-1]


class _Series:
    """Bucket lookups over one node's history (O(1) per lookup)."""

    def __init__(self, points: Sequence[tuple[float, float]], bucket: float) -> None:
        self.bucket = bucket
        self.values = {math.floor(t / bucket + 1e-9): v for t, v in points}
        self.first = min(self.values) if self.values else 0
        self.last = max(self.values) if self.values else -1

    def raw(self, k: int) -> float | None:
        return self.values.get(k)

    def smooth(self, k: int) -> float | None:
        """Median of the buckets within SMOOTH_BUCKETS of `k` (a short spike is not a season)."""
        got = [v for j in range(k - SMOOTH_BUCKETS, k + SMOOTH_BUCKETS + 1) if (v := self.values.get(j)) is not None]
        return median(got) if got else None


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class _Seasonal:
    """Seasonal values of one series at a period (a day or a week)."""

    def __init__(self, series: _Series, period: float) -> None:
        self.s = series
        self.shift = round(period / series.bucket)
        self._cache: dict[int, float | None] = {}

    def at_bucket(self, k: int) -> float | None:
        """Median over past seasons of the smoothed value at bucket `k` less whole periods."""
        if k in self._cache:
            return self._cache[k]
        got: list[float] = []
        for m in range(1, MAX_SEASONS + 1):
            j = k - m * self.shift
            if j + SMOOTH_BUCKETS < self.s.first:
                break
            v = self.s.smooth(j)
            if v is not None:
                got.append(v)
        value = median(got) if got else None
        self._cache[k] = value
        return value

    def at(self, t: float) -> float | None:
        """Seasonal value at time t, linear between bucket centres."""
        b = self.s.bucket
        x = t / b - 0.5
        k0 = math.floor(x)
        w = x - k0
        v0, v1 = self.at_bucket(k0), self.at_bucket(k0 + 1)
        if v0 is None:
            return v1
        if v1 is None:
            return v0
        return v0 + w * (v1 - v0)


def _ratios(seasonal: _Seasonal, series: _Series, start: int, end: int) -> dict[int, float]:
    """actual / seasonal for every bucket in [start, end) that has both (seasonal > 0)."""
    out: dict[int, float] = {}
    for k in range(start, end):
        v = series.raw(k)
        s = seasonal.at_bucket(k)
        if v is not None and s is not None and s > 1e-9:
            out[k] = v / s
    return out


def _level(ratios: Mapping[int, float], before: int, buckets: int, fallback: int) -> float | None:
    """Median ratio over the `buckets` before bucket `before`, widening to `fallback` buckets on a gap."""
    got = [r for k in range(before - buckets, before) if (r := ratios.get(k)) is not None]
    if len(got) < max(1, buckets // 3):
        got = [r for k in range(before - fallback, before) if (r := ratios.get(k)) is not None]
    return median(got) if got else None


def _backtest(seasonal: _Seasonal, series: _Series, now_k: int, lead_buckets: int) -> tuple[list[float], float | None]:
    """Relative errors over the last day of `level(before b - lead) x seasonal(b)` vs actual(b); the level now."""
    bucket = series.bucket
    level_n = round(LEVEL_WINDOW_SECONDS / bucket)
    fallback_n = round(LEVEL_FALLBACK_SECONDS / bucket)
    window_n = round(BAND_WINDOW_SECONDS / bucket)
    start = now_k - window_n - lead_buckets - fallback_n
    ratios = _ratios(seasonal, series, start, now_k + 1)
    errors: list[float] = []
    for k in range(now_k - window_n, now_k + 1):
        r = ratios.get(k)
        if r is None:
            continue
        lv = _level(ratios, k - lead_buckets + 1, level_n, fallback_n)
        if lv is not None and lv > 1e-9:
            errors.append(r / lv - 1.0)
    return errors, _level(ratios, now_k + 1, level_n, fallback_n)


def _points(mean_at: Iterable[tuple[float, float]], band: float) -> tuple[ForecastPoint, ...]:
    return tuple(
        ForecastPoint(
            at=datetime.fromtimestamp(t, UTC),
            mean=m,
            lower=max(0.0, m * (1.0 - band)),
            upper=m * (1.0 + band),
        )
        for t, m in mean_at
    )


def _times(now: float, horizon: float, step: float) -> list[float]:
    n = max(1, math.ceil(horizon / step - 1e-9))
    return [now + min(horizon, i * step) for i in range(n + 1)]


def forecast_node(
    node: str,
    history: DemandHistory,
    now: datetime,
    *,
    current: float | None = None,
    horizon_seconds: float = 1800.0,
    step_seconds: float = STEP_SECONDS,
    band_lead_seconds: float | None = None,
) -> NodeForecast | None:
    """The node's demand forecast from `now` over `horizon_seconds`; None without any history or level.

    `current` is the demand believed now (beliefs' median of the last samples): it anchors the
    trend method and is the level of last resort. The seasonal methods level off the last hour.
    The band is measured at `band_lead_seconds` ahead (default: the horizon), the lead the caller
    plans on: errors grow with the lead, and points past it are read for their expected value.
    """
    pts = [p for p in history.of(node) if p[0] < now.timestamp()]
    t_now = now.timestamp()
    bucket = history.bucket_seconds
    times = _times(t_now, horizon_seconds, step_seconds)
    days = (t_now - pts[0][0]) / DAY if pts else 0.0
    series = _Series(pts, bucket)
    now_k = math.floor(t_now / bucket)
    lead = LEAD_EXTRA + max(
        1, math.ceil((horizon_seconds if band_lead_seconds is None else band_lead_seconds) / bucket)
    )
    # History that stopped a day or more ago (a store down) cannot vouch for today: the trend instead.
    fresh = bool(pts) and pts[-1][0] >= t_now - STALE_HISTORY_SECONDS
    if days >= MIN_SEASONAL_DAYS and fresh:
        candidates: list[tuple[float, Method, _Seasonal, list[float], float]] = []
        periods: list[tuple[Method, float]] = [("seasonal_daily", DAY)]
        if days >= MIN_WEEKLY_DAYS:
            periods.append(("seasonal_weekly", WEEK))
        for method, period in periods:
            seasonal = _Seasonal(series, period)
            errors, level = _backtest(seasonal, series, now_k - 1, lead)
            if level is None and current is not None and (s_now := seasonal.at(t_now)):
                level = current / s_now
            elif level is None and current is not None and current <= 1e-9 and seasonal.at(t_now) is not None:
                # Idle now as at this time on past days (no ratio to read a level from): the seasons hold.
                level = 1.0
            if level is None:
                continue
            score = _quantile([abs(e) for e in errors], BAND_QUANTILE) if len(errors) >= MIN_BAND_ERRORS else math.inf
            candidates.append((score, method, seasonal, errors, level))
        if candidates:
            # Weekly must beat daily clearly (10%) to be chosen: with two weeks it has fewer seasons to median.
            candidates.sort(key=lambda c: (c[0] * (1.0 if c[1] == "seasonal_daily" else 1.1), c[1]))
            score, method, seasonal, errors, level = candidates[0]
            band = _band(errors)
            means: list[tuple[float, float]] = []
            for t in times:
                s = seasonal.at(t)
                if s is None:
                    break
                means.append((t, max(0.0, level * s)))
            if len(means) == len(times):
                return NodeForecast(
                    node=node,
                    method=method,
                    made_at=now,
                    days_of_history=round(days, 3),
                    band=band,
                    level=level,
                    points=_points(means, band),
                )
    recent = [(t + bucket / 2, v) for t, v in pts if t >= t_now - LEVEL_WINDOW_SECONDS]
    if current is None:
        if not recent:
            return None
        current = recent[-1][1]
    slope = theil_sen_slope(recent) if len(recent) >= 4 else 0.0
    band = BAND_UNMEASURED
    if len(recent) >= 4:
        intercept = median(v - slope * t for t, v in recent)
        level_now = max(abs(current), 1e-9)
        mad = median(abs(v - (intercept + slope * t)) for t, v in recent)
        band = min(BAND_CAP, max(0.05, 3.0 * 1.4826 * mad / level_now))
    means = [(t, max(0.0, current + slope * (t - t_now))) for t in times]
    return NodeForecast(
        node=node,
        method="trend",
        made_at=now,
        days_of_history=round(days, 3),
        band=band,
        points=_points(means, band),
    )


def _band(errors: Sequence[float]) -> float:
    if len(errors) < MIN_BAND_ERRORS:
        return BAND_UNMEASURED
    return min(BAND_CAP, max(BAND_FLOOR, _quantile([abs(e) for e in errors], BAND_QUANTILE)))


def forecast(
    history: DemandHistory,
    now: datetime,
    nodes: Iterable[str],
    *,
    current: Mapping[str, float] | None = None,
    horizon_seconds: float = 1800.0,
    step_seconds: float = STEP_SECONDS,
    band_lead_seconds: float | None = None,
) -> dict[str, NodeForecast]:
    """Forecasts for `nodes` (those with no history and no current level are left out)."""
    current = current or {}
    out: dict[str, NodeForecast] = {}
    for n in nodes:
        f = forecast_node(
            n,
            history,
            now,
            current=current.get(n),
            horizon_seconds=horizon_seconds,
            step_seconds=step_seconds,
            band_lead_seconds=band_lead_seconds,
        )
        if f is not None:
            out[n] = f
    return out


class DemandOutlook(Frozen):
    """What the forecast says about one node's demand over the planning window, for planning and people.

    Demand is forecast at the entry nodes and carried through the graph (inner nodes' demand is
    the graph's function of the entries', as beliefs compute it), so every node fed only by
    entries with a seasonal forecast has one.
    """

    method: Method
    days_of_history: float
    band: float
    """Relative half-width of the entries' band (the widest of them)."""
    window_seconds: float
    """The planning window: readiness delay + cool-down (capacity is sized to hold through it)."""
    current_rps: float
    peak_rps: float
    """Expected demand at the window's peak."""
    peak_upper_rps: float
    """The band's upper edge there."""
    peak_at: AwareDatetime
    planning_rps: float
    """Demand capacity is sized for: the upper band's peak over the window, never less than now."""
    hold_seconds: float | None = None
    """The scale-down window: readiness delay + the longer of cool-down and `scale_down_hold_seconds`."""
    hold_rps: float | None = None
    """Demand a scale-down must still carry: the upper band's peak over the hold window (>= planning_rps)."""
    crossing_at: AwareDatetime | None = None
    """When the upper band first crosses the node's target at its current capacity (within the window)."""
    external_rps: float | None = None
    """Entry nodes: the external load the planner projects (the upper band's peak over the window)."""

    def sentence(self) -> str:
        """'peak of 1,840 rps expected at 14:10, +/- 6% (seasonal forecast, 7 days of history)'."""
        kind = "weekly seasonal" if self.method == "seasonal_weekly" else "seasonal"
        days = math.floor(self.days_of_history)
        return (
            f"peak of {self.peak_rps:,.0f} rps expected at {self.peak_at:%H:%M}, +/- {self.band:.0%} "
            f"({kind} forecast, {days} day{'' if days == 1 else 's'} of history)"
        )
