"""Robust trend estimation for belief revision.

We use the Theil-Sen estimator: the slope is the median of the slopes of every pair
of samples. It ignores up to ~29% of wild samples (a scrape glitch, a one-off
spike) where least squares would be dragged by a single outlier, needs no tuning
(Holt needs two smoothing constants per series), and is exact on a clean line.
Cost is O(n^2) in the window length, so the window is kept short (MAX_SAMPLES).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

MAX_SAMPLES = 20
"""Longest window a trend is fitted on (190 pairs); older samples are dropped."""


def theil_sen_slope(points: Sequence[tuple[float, float]]) -> float:
    """Median pairwise slope of (t, y) points; 0.0 with fewer than two distinct times."""
    pts = list(points)[-MAX_SAMPLES:]
    slopes = [(y2 - y1) / (t2 - t1) for i, (t1, y1) in enumerate(pts) for (t2, y2) in pts[i + 1 :] if t2 != t1]
    return median(slopes) if slopes else 0.0


def significant_slope(
    points: Sequence[tuple[float, float]], min_samples: int = 6, min_change: float = 0.05, noise_factor: float = 4.0
) -> float:
    """Theil-Sen slope, or 0.0 when the evidence is too thin to trust.

    A slope counts only with `min_samples` points, when it moves the series by at least
    `min_change` of its median level over the window, and by at least `noise_factor`
    times the median absolute residual around the fitted line. Below that, noise around
    a flat load would be read as a trend, projected over the horizon, and provoke a
    scale-up that the next quiet window takes back (flapping).
    """
    pts = list(points)[-MAX_SAMPLES:]
    if len(pts) < min_samples:
        return 0.0
    slope = theil_sen_slope(pts)
    span = pts[-1][0] - pts[0][0]
    level = abs(median(y for _, y in pts))
    change = abs(slope) * span
    if span <= 0 or change < min_change * max(level, 1e-9):
        return 0.0
    intercept = median(y - slope * t for t, y in pts)
    mad = median(abs(y - (intercept + slope * t)) for t, y in pts)
    if change < noise_factor * mad:
        return 0.0
    return slope
