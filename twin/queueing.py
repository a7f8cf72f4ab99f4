"""M/M/c queueing formulas: Erlang B/C and the p95 of waiting and response (sojourn) time.

Model: Poisson arrivals at rate `lam`, `c` identical servers each completing `mu`
requests per second (exponential service), FCFS, infinite queue. Stable only while
rho = lam / (c * mu) < 1.

- Erlang C (probability that an arrival waits) is computed from the Erlang B
  recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)) with a = lam / mu, and
  C = B / (1 - rho (1 - B)). No factorials or powers, so c = 1000 and more is
  numerically stable; the cost is O(c).
- Waiting time W: P(W > t) = C exp(-(c mu - lam) t).
- Response time S = W + X with X ~ Exp(mu) independent of W. W is 0 with
  probability 1 - C and Exp(theta), theta = c mu - lam, with probability C, so

      P(S > t) = (1 - C) e^{-mu t} + C * (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu)

  (with the limit (1 + mu t) e^{-mu t} when theta == mu). This is exact, not an
  approximation; its p95 is found by bisection on this closed-form tail.
"""

from __future__ import annotations

import math

__all__ = [
    "P95_TAIL",
    "erlang_b",
    "erlang_c",
    "response_time_p95",
    "response_time_tail",
    "waiting_time_p95",
    "waiting_time_tail",
]

P95_TAIL = 0.05
_SOLVER_ITERATIONS = 200


def _check(c: int, lam: float, mu: float) -> None:
    if c < 0:
        raise ValueError(f"servers c must be >= 0, got {c}")
    if lam < 0 or not math.isfinite(lam):
        raise ValueError(f"arrival rate lam must be finite and >= 0, got {lam}")
    if mu <= 0 or not math.isfinite(mu):
        raise ValueError(f"service rate mu must be finite and > 0, got {mu}")


def erlang_b(c: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c with offered load a = lam/mu (iterative, stable for large c)."""
    if c < 0 or offered_load < 0:
        raise ValueError(f"erlang_b needs c >= 0 and load >= 0, got c={c}, load={offered_load}")
    b = 1.0
    for k in range(1, c + 1):
        ab = offered_load * b
        b = ab / (k + ab)
    return b


def erlang_c(c: int, lam: float, mu: float) -> float:
    """Probability that an arrival has to wait in M/M/c; 1.0 when the queue is unstable (rho >= 1)."""
    _check(c, lam, mu)
    if lam == 0:
        return 0.0
    if c == 0:
        return 1.0
    a = lam / mu
    rho = a / c
    if rho >= 1:
        return 1.0
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def waiting_time_tail(c: int, lam: float, mu: float, t: float) -> float:
    """P(W > t) = C exp(-(c mu - lam) t) for a stable M/M/c."""
    _require_stable(c, lam, mu)
    return erlang_c(c, lam, mu) * math.exp(-(c * mu - lam) * t)


def waiting_time_p95(c: int, lam: float, mu: float, tail: float = P95_TAIL) -> float:
    """Seconds: the (1 - tail) quantile of queueing delay; 0 when fewer than `tail` of arrivals wait."""
    _require_stable(c, lam, mu)
    prob_wait = erlang_c(c, lam, mu)
    if prob_wait <= tail:
        return 0.0
    return math.log(prob_wait / tail) / (c * mu - lam)


def response_time_tail(c: int, lam: float, mu: float, t: float) -> float:
    """P(S > t) for the sojourn time S = wait + service of a stable M/M/c (exact closed form)."""
    _require_stable(c, lam, mu)
    return _sojourn_tail(erlang_c(c, lam, mu), c * mu - lam, mu, t)


def response_time_p95(c: int, lam: float, mu: float, tail: float = P95_TAIL) -> float:
    """Seconds: the (1 - tail) quantile of response time (wait + service), solved numerically.

    Safeguarded Newton on the exact tail P(S > t) - tail, with the exact density as derivative,
    inside a bisection bracket; converges to 1e-12 relative in a handful of steps.
    """
    _require_stable(c, lam, mu)
    if not 0 < tail < 1:
        raise ValueError(f"tail must be in (0, 1), got {tail}")
    prob_wait = erlang_c(c, lam, mu)
    theta = c * mu - lam
    # Bracket: the p95 of S lies between the service-time p95 when no one waits and the sum of
    # the wait and service quantiles taken separately.
    lo = 0.0
    hi = math.log(1 / tail) / mu + (math.log(max(prob_wait, tail) / tail) / theta if prob_wait > 0 else 0.0)
    hi = max(hi, 1e-12) * 2
    while _sojourn_tail(prob_wait, theta, mu, hi) > tail:
        hi *= 2
    t = math.log(1 / tail) / min(mu, theta)
    if not lo < t < hi:
        t = (lo + hi) / 2
    for _ in range(_SOLVER_ITERATIONS):
        excess = _sojourn_tail(prob_wait, theta, mu, t) - tail
        if excess > 0:
            lo = t
        else:
            hi = t
        density = _sojourn_density(prob_wait, theta, mu, t)
        nxt = t + excess / density if density > 0 else (lo + hi) / 2
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2
        if abs(nxt - t) <= 1e-12 * nxt or hi - lo <= 1e-12 * hi:
            return nxt
        t = nxt
    return t


def _sojourn_tail(prob_wait: float, theta: float, mu: float, t: float) -> float:
    # The hypoexponential tail (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu) equals
    # e^{-m t} (1 - m expm1(-eps t) / eps) with m = min(mu, theta), eps = |theta - mu|:
    # expm1 stays in (-1, 0], so nothing overflows and theta ~ mu stays accurate.
    m = min(mu, theta)
    eps = abs(theta - mu)
    ratio = -t if eps * t < 1e-12 else math.expm1(-eps * t) / eps
    both = math.exp(-m * t) * (1 - m * ratio)
    return (1 - prob_wait) * math.exp(-mu * t) + prob_wait * both


def _sojourn_density(prob_wait: float, theta: float, mu: float, t: float) -> float:
    # -d/dt P(S > t): the service density (no wait) mixed with the hypoexponential density
    # mu theta (e^{-mu t} - e^{-theta t}) / (theta - mu), written in the same stable form.
    m = min(mu, theta)
    eps = abs(theta - mu)
    spread = t if eps * t < 1e-12 else -math.expm1(-eps * t) / eps
    both = mu * theta * math.exp(-m * t) * spread
    return (1 - prob_wait) * mu * math.exp(-mu * t) + prob_wait * both


def _require_stable(c: int, lam: float, mu: float) -> None:
    _check(c, lam, mu)
    if c == 0 or lam >= c * mu:
        raise ValueError(f"M/M/c is unstable: lam={lam} >= c*mu={c * mu}")
