"""The market model's fit statistics on an imperfect fit, against numpy.polyfit and closed forms,
and the edge values of the event study, drawdown and claim checks."""

import math

import numpy as np
import pandas as pd
import pytest

from effllm.markets import (
    MIN_ESTIMATION_DAYS,
    check_claim,
    closes,
    event_study,
    fit_market_model,
    load_prices,
    market_value_change,
    max_drawdown,
    recovery_date,
)


def _noisy_pair(n: int, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=n)
    market = pd.Series(rng.normal(0.001, 0.01, n), index=dates)
    asset = 0.002 + 1.7 * market + rng.normal(0, 0.015, n)
    return asset, market


@pytest.mark.parametrize("n", [3, 5, 40])
def test_fit_statistics_match_polyfit_with_n_minus_2_degrees_of_freedom(n):
    asset, market = _noisy_pair(n)
    a, m = asset.to_numpy(), market.to_numpy()
    slope, intercept = np.polyfit(m, a, 1)
    resid = a - (intercept + slope * m)
    fit = fit_market_model(asset, market)
    assert fit.n == n
    assert fit.beta == pytest.approx(slope, rel=1e-9)
    assert fit.alpha == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    assert fit.resid_std == pytest.approx(math.sqrt((resid**2).sum() / (n - 2)), rel=1e-9)
    # R^2 of a simple regression is the squared correlation of the two series
    assert fit.r_squared == pytest.approx(np.corrcoef(m, a)[0, 1] ** 2, rel=1e-9)
    assert 0 < fit.r_squared < 1
    assert fit.expected(0.01) == pytest.approx(intercept + slope * 0.01)


def test_fit_needs_three_paired_returns_and_a_moving_market():
    asset, market = _noisy_pair(3)
    assert fit_market_model(asset, market).n == 3
    with pytest.raises(ValueError, match="at least 3 paired returns .* got 2"):
        fit_market_model(asset.iloc[:2], market.iloc[:2])
    with pytest.raises(ValueError, match="at least 3 paired returns .* got 2"):
        fit_market_model(asset, market.iloc[1:].reindex(market.index))  # one NaN dropped
    flat = pd.Series(0.01, index=market.index)
    with pytest.raises(ValueError, match="does not vary"):
        fit_market_model(asset, flat)
    assert math.isnan(fit_market_model(flat, market).r_squared)  # the asset does not vary


def _returns(n: int) -> pd.DataFrame:
    asset, market = _noisy_pair(n, seed=1)
    return pd.DataFrame({"A": asset, "M": market})


def test_estimation_window_of_exactly_the_minimum():
    returns = _returns(MIN_ESTIMATION_DAYS + 3)
    event = returns.index[MIN_ESTIMATION_DAYS + 1]  # window (-1, 1) opens after 20 returns
    study = event_study(returns, "A", "M", event)
    assert study.model.n == MIN_ESTIMATION_DAYS
    assert study.estimation_start == returns.index[0]
    assert study.estimation_end == returns.index[MIN_ESTIMATION_DAYS - 1]
    explicit = event_study(returns, "A", "M", event, estimation_days=MIN_ESTIMATION_DAYS)
    assert explicit.model == study.model
    with pytest.raises(ValueError, match="estimation window of 19 returns"):
        event_study(returns, "A", "M", event, estimation_days=MIN_ESTIMATION_DAYS - 1)
    with pytest.raises(ValueError, match="estimation window of 19 returns: 19 are available"):
        event_study(returns, "A", "M", returns.index[MIN_ESTIMATION_DAYS])
    # the window's statistics, from the fitted model written out
    fit = study.model
    win = returns.iloc[MIN_ESTIMATION_DAYS : MIN_ESTIMATION_DAYS + 3]
    abnormal = win["A"] - (fit.alpha + fit.beta * win["M"])
    np.testing.assert_allclose(study.days["abnormal"], abnormal)
    assert study.car == pytest.approx(abnormal.sum())
    assert study.car_t == pytest.approx(abnormal.sum() / (fit.resid_std * math.sqrt(3)))
    np.testing.assert_allclose(study.days["t"], abnormal / fit.resid_std)


def test_max_drawdown_of_two_closes_and_recovery_to_exactly_the_old_peak():
    dates = pd.bdate_range("2025-01-06", periods=5)
    two = max_drawdown(pd.Series([100.0, 80.0], index=dates[:2]))
    assert (two.peak, two.trough, two.depth) == (100.0, 80.0, pytest.approx(-0.2))
    assert two.peak_date == dates[0] and two.trough_date == dates[1]
    assert two.recovery_date is None
    with pytest.raises(ValueError, match="at least two closes"):
        max_drawdown(pd.Series([100.0], index=dates[:1]))
    back = max_drawdown(pd.Series([90.0, 100.0, 70.0, 99.99, 100.0], index=dates))
    assert back.peak_date == dates[1] and back.trough_date == dates[2]
    assert back.depth == pytest.approx(-0.3)
    assert back.recovery_date == dates[4]  # equal to the peak counts as regained


def test_check_claim_nearly_needs_the_same_sign_and_a_figure_at_most_5pct_above():
    assert check_claim("-17", -16.97, "nearly") == "right"
    assert check_claim("17", 16.97, "nearly") == "right"
    assert check_claim("17", -16.97, "nearly") == "wrong"  # same size, opposite sign
    assert check_claim("-17", 16.97, "nearly") == "wrong"
    assert check_claim("100", 95.0, "nearly") == "right"  # exactly 5% above
    assert check_claim("100", 94.9, "nearly") == "wrong"
    assert check_claim("100", 100.1, "nearly") == "wrong"  # the data above the figure
    assert check_claim("0", 0.0, "nearly") == "wrong"


def test_check_claim_about_above_below_and_words_at_their_boundaries():
    assert check_claim("100", 105.0, "about") == "right"  # 5% either way
    assert check_claim("100", 95.0, "about") == "right"
    assert check_claim("100", 105.5, "about") == "wrong"
    assert check_claim("100", 150.0, "about") == "wrong"
    assert check_claim("100", 100.0, "below") == "wrong"  # "below 100" excludes 100 itself
    assert check_claim("100", 99.9, "below") == "right"
    assert check_claim("100", 100.0, "above") == "wrong"
    assert check_claim("100", 100.1, "above") == "right"
    assert check_claim("Monday", "monday") == "right"  # words compare without case
    assert check_claim(" monday", "MONDAY ") == "right"
    assert check_claim("Monday", "Tuesday") == "wrong"


def test_a_window_that_opens_on_the_first_return_leaves_nothing_to_estimate_on():
    returns = _returns(MIN_ESTIMATION_DAYS + 3)
    with pytest.raises(ValueError, match="estimation window of 0 returns: 0 are available"):
        event_study(returns, "A", "M", returns.index[1])  # window (-1, 1) opens on day 0
    with pytest.raises(ValueError, match="runs outside the returns"):
        event_study(returns, "A", "M", returns.index[0])


def test_closes_of_one_day_and_a_reversed_range():
    prices = load_prices()
    one = closes(prices, ["NVDA"], start="2025-01-27", end="2025-01-27")
    assert list(one.index) == [pd.Timestamp("2025-01-27")] and one["NVDA"].iloc[0] == 118.42
    with pytest.raises(ValueError, match="start 2025-01-28 is after end 2025-01-27"):
        closes(prices, ["NVDA"], start="2025-01-28", end="2025-01-27")


def test_recovery_is_counted_after_the_given_day_only():
    dates = pd.bdate_range("2025-01-06", periods=4)
    close = pd.Series([100.0, 80.0, 90.0, 101.0], index=dates)
    assert recovery_date(close, 100.0, dates[0]) == dates[3]  # the day itself does not count
    assert recovery_date(close, 200.0, dates[0]) is None


def test_market_value_change_names_the_bad_close():
    with pytest.raises(ValueError, match="^close must be positive"):
        market_value_change(100.0, -1.0, 1e9)
    with pytest.raises(ValueError, match="^prev_close must be positive"):
        market_value_change(-1.0, 100.0, 1e9)
