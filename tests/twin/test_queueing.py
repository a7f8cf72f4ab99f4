"""M/M/c formulas against textbook values and their own definitions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.queueing import (
    erlang_b,
    erlang_c,
    response_time_p95,
    response_time_tail,
    waiting_time_p95,
    waiting_time_tail,
)


def test_erlang_c_two_servers_textbook_value() -> None:
    # c=2, a=1.5: C = (a^2/2 * 1/(1-rho)) / (1 + a + a^2/2 * 1/(1-rho)) = 4.5 / 7 = 0.642857...
    assert round(erlang_c(2, 1.5, 1.0), 4) == 0.6429
    assert erlang_c(2, 1.5, 1.0) == pytest.approx(9 / 14, rel=1e-12)


def test_waiting_time_p95_follows_from_erlang_c() -> None:
    prob_wait = erlang_c(2, 1.5, 1.0)
    # P(W > t) = C exp(-(c mu - lam) t) = 0.05  =>  t = ln(C / 0.05) / (c mu - lam)
    expected = math.log(prob_wait / 0.05) / (2 * 1.0 - 1.5)
    assert waiting_time_p95(2, 1.5, 1.0) == pytest.approx(expected, rel=1e-12)
    assert waiting_time_p95(2, 1.5, 1.0) == pytest.approx(5.1078, abs=1e-4)
    assert waiting_time_tail(2, 1.5, 1.0, expected) == pytest.approx(0.05, rel=1e-12)


def test_response_time_p95_solves_the_sojourn_tail() -> None:
    p95 = response_time_p95(2, 1.5, 1.0)
    # Independent check of the tail by numeric convolution of W (atom + Exp(theta)) with X ~ Exp(mu).
    prob_wait, theta, mu = 9 / 14, 0.5, 1.0
    steps = 200_000
    h = p95 / steps
    integral = 0.0
    for k in range(steps):
        w = (k + 0.5) * h  # midpoint rule over the waiting time w in [0, p95]
        integral += prob_wait * theta * math.exp(-theta * w) * (1 - math.exp(-mu * (p95 - w))) * h
    cdf = (1 - prob_wait) * (1 - math.exp(-mu * p95)) + integral
    assert (1 - cdf) == pytest.approx(0.05, abs=1e-6)
    assert response_time_tail(2, 1.5, 1.0, p95) == pytest.approx(0.05, rel=1e-9)
    # Response time exceeds waiting time by at most the service-time quantile.
    assert waiting_time_p95(2, 1.5, 1.0) < p95 < waiting_time_p95(2, 1.5, 1.0) + math.log(20) / mu


def test_mm1_response_time_is_exponential() -> None:
    # M/M/1 sojourn time is Exp(mu - lam): p95 = ln 20 / (mu - lam).
    assert response_time_p95(1, 3.0, 5.0) == pytest.approx(math.log(20) / 2.0, rel=1e-9)


def test_idle_queue_is_service_time_only() -> None:
    assert erlang_c(4, 0.0, 2.0) == 0.0
    assert response_time_p95(4, 0.0, 2.0) == pytest.approx(math.log(20) / 2.0, rel=1e-9)


def test_large_c_is_numerically_stable() -> None:
    value = erlang_c(1000, 990.0, 1.0)
    assert 0.0 < value < 1.0
    assert math.isfinite(response_time_p95(1000, 999.9, 1.0))
    assert erlang_b(5000, 4000.0) < 1e-3


def test_unstable_queue() -> None:
    assert erlang_c(2, 2.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="unstable"):
        response_time_p95(2, 2.0, 1.0)
    with pytest.raises(ValueError, match="mu"):
        erlang_c(2, 1.0, 0.0)


@given(
    c=st.integers(min_value=1, max_value=300),
    rho=st.floats(min_value=0.01, max_value=0.99),
    mu=st.floats(min_value=0.1, max_value=1000.0),
)
def test_erlang_c_bounds_and_tail(c: int, rho: float, mu: float) -> None:
    lam = rho * c * mu
    prob_wait = erlang_c(c, lam, mu)
    # Waiting is likelier with queueing than blocking is without it: B <= C <= 1.
    assert erlang_b(c, lam / mu) - 1e-12 <= prob_wait <= 1.0
    p95 = response_time_p95(c, lam, mu)
    assert response_time_tail(c, lam, mu, p95) == pytest.approx(0.05, abs=1e-9)


@given(c=st.integers(min_value=1, max_value=50), mu=st.floats(min_value=0.5, max_value=50.0))
def test_p95_grows_with_load(c: int, mu: float) -> None:
    values = [response_time_p95(c, rho * c * mu, mu) for rho in (0.1, 0.5, 0.8, 0.95)]
    assert values == sorted(values)
