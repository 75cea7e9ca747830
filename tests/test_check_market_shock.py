"""Lab 5's checks (effllm.check_market_shock): the right formulas pass, each mistake is named."""

import math

import numpy as np
import pytest

from effllm import check_market_shock as lab5
from effllm import markets


def simple_return(P_prev, P):
    return P / P_prev - 1


def market_value_change(P_prev, P, shares):
    return shares * (P - P_prev)


def market_model(r_i, r_m):
    beta = np.sum((r_m - r_m.mean()) * (r_i - r_i.mean())) / np.sum((r_m - r_m.mean()) ** 2)
    alpha = r_i.mean() - beta * r_m.mean()
    e = r_i - alpha - beta * r_m
    return alpha, beta, np.sqrt(np.sum(e**2) / (len(e) - 2))


def abnormal_return(r_i, r_m, alpha, beta, sigma):
    AR = r_i - (alpha + beta * r_m)
    return AR, AR / sigma


def cumulative_abnormal_return(AR, sigma):
    CAR = np.sum(AR)
    return CAR, CAR / (sigma * np.sqrt(len(AR)))


def event_study(r_i, r_m, event, window):
    lo, hi = window
    alpha, beta, sigma = market_model(r_i[: event + lo], r_m[: event + lo])
    AR, _ = abnormal_return(
        r_i[event + lo : event + hi + 1], r_m[event + lo : event + hi + 1], alpha, beta, sigma
    )
    return cumulative_abnormal_return(AR, sigma)


def _ddof(d):
    def fit(r_i, r_m):
        alpha, beta, _ = market_model(r_i, r_m)
        return alpha, beta, np.std(r_i - alpha - beta * r_m, ddof=d)

    return fit


def _beta_as(kind):
    def fit(r_i, r_m):
        if kind == "correlation":
            beta = np.corrcoef(r_i, r_m)[0, 1]
        else:
            beta = np.cov(r_i, r_m)[0, 1] / np.var(r_i, ddof=1)
        alpha = r_i.mean() - beta * r_m.mean()
        return alpha, beta, np.std(r_i - alpha - beta * r_m, ddof=2)

    return fit


def _window(end_at, statistic="car"):
    def study(r_i, r_m, event, window):
        lo, hi = window
        end = {"event": event, "hi": event + hi + 1}[end_at] if end_at else event + lo
        alpha, beta, sigma = market_model(r_i[:end], r_m[:end])
        AR = r_i[event + lo : event + hi + 1] - alpha - beta * r_m[event + lo : event + hi + 1]
        if statistic == "day":
            return AR[-lo], AR[-lo] / sigma
        L = len(AR) if statistic == "no_sqrt" else math.sqrt(len(AR))
        return AR.sum(), AR.sum() / (sigma * L)

    return study


LAB5 = [
    (
        lab5.simple_return,
        simple_return,
        [
            (lambda p0, p1: np.log(p1 / p0), "log return"),
            (lambda p0, p1: p0 / p1 - 1, "backwards"),
            (lambda p0, p1: (p1 - p0) / p1, "divides the change by today's close"),
            (lambda p0, p1: 100 * (p1 / p0 - 1), "percentage"),
            (lambda p0, p1: p1 - p0, "price change in dollars"),
        ],
    ),
    (
        lab5.market_value_change,
        market_value_change,
        [
            (lambda p0, p1, s: s * (p0 - p1), "sign is flipped"),
            (lambda p0, p1, s: s * (p1 / p0 - 1), "multiplies the shares by the return"),
            (lambda p0, p1, s: s * (p1 - p0) / 1e9, "billions"),
            (lambda p0, p1, s: s * p1, "market value after the move"),
        ],
    ),
    (
        lab5.market_model,
        market_model,
        [
            (
                lambda r_i, r_m: market_model(r_i, r_m)[1::-1] + market_model(r_i, r_m)[2:],
                r"returns \(beta, alpha, sigma\)",
            ),
            (_beta_as("reverse"), "variance of the stock's returns"),
            (_beta_as("correlation"), "correlation"),
            (lambda r_i, r_m: (r_i.mean(), *market_model(r_i, r_m)[1:]), "alpha is the stock's"),
            (_ddof(0), r"by n \(numpy's default std\)"),
            (_ddof(1), r"n - 1 \(pandas' default std\)"),
            (
                lambda r_i, r_m: (*market_model(r_i, r_m)[:2], np.std(r_i, ddof=2)),
                "spread of the stock's returns",
            ),
        ],
    ),
    (
        lab5.abnormal_return,
        abnormal_return,
        [
            (lambda r_i, r_m, a, b, s: abnormal_return(r_i, r_m, 0.0, b, s), "leaves out alpha"),
            (lambda r_i, r_m, a, b, s: abnormal_return(r_i, r_m, 0.0, 1.0, s), "market's return"),
            (
                lambda r_i, r_m, a, b, s: tuple(-x for x in abnormal_return(r_i, r_m, a, b, s)),
                "sign is flipped",
            ),
            (lambda r_i, r_m, a, b, s: abnormal_return(r_i, r_m, a, b, s**2), "variance"),
            (
                lambda r_i, r_m, a, b, s: (
                    100 * abnormal_return(r_i, r_m, a, b, s)[0],
                    abnormal_return(r_i, r_m, a, b, s)[1],
                ),
                "percentage",
            ),
        ],
    ),
    (
        lab5.cumulative_abnormal_return,
        cumulative_abnormal_return,
        [
            (lambda AR, s: (AR.sum(), AR.sum() / (s * len(AR))), r"sigma \* L;"),
            (lambda AR, s: (AR.sum(), AR.sum() / s), "one day's sigma"),
            (lambda AR, s: (AR.mean(), AR.mean() / (s * len(AR) ** 0.5)), "averages"),
            (
                lambda AR, s: (np.prod(1 + AR) - 1, (np.prod(1 + AR) - 1) / (s * len(AR) ** 0.5)),
                "compounds",
            ),
            (lambda AR, s: (100 * AR.sum(), AR.sum() / (s * len(AR) ** 0.5)), "percentage"),
        ],
    ),
    (
        lab5.event_study,
        event_study,
        [
            (_window("hi"), "inside the event window"),
            (_window("event"), "runs up to the event day"),
            (_window(None, "day"), "event day's abnormal return"),
            (_window(None, "no_sqrt"), r"sigma \* sqrt\(L\)"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("check", "right", "wrongs"), LAB5, ids=lambda x: getattr(x, "__name__", "")
)
def test_lab5_checks_accept_the_formula_and_name_each_mistake(
    check, right, wrongs, grades, one_percent_off
):
    grades(check, right, wrongs, one_percent_off(right))


def test_the_references_are_the_library_on_the_lab_data():
    """The wrappers the checks compare with give what markets.event_study gives on the data."""
    returns = markets.simple_returns(markets.closes(markets.load_prices(), ["NVDA", "SPX"]))
    study = markets.event_study(returns, "NVDA", "SPX", "2025-01-27", window=(-1, 1))
    m = study.model
    est = returns.loc[study.estimation_start : study.estimation_end]
    fit = lab5._fit(est["NVDA"].to_numpy(), est["SPX"].to_numpy())
    assert fit == pytest.approx((m.alpha, m.beta, m.resid_std), rel=1e-12)
    for date, row in study.days.iterrows():
        ar, t = lab5._abnormal(
            row["actual"], returns.loc[date, "SPX"], m.alpha, m.beta, m.resid_std
        )
        assert (ar, t) == pytest.approx((row["abnormal"], row["t"]), rel=1e-12)
    car = lab5._car(study.days["abnormal"].to_numpy(), m.resid_std)
    assert car == pytest.approx((study.car, study.car_t), rel=1e-12)
    i = returns.index.get_loc(study.event_date)
    result = lab5._event_study(returns["NVDA"].to_numpy(), returns["SPX"].to_numpy(), i, (-1, 1))
    assert result == pytest.approx((study.car, study.car_t), rel=1e-12)
    assert event_study(returns["NVDA"].to_numpy(), returns["SPX"].to_numpy(), i, (-1, 1)) == (
        pytest.approx(result, rel=1e-9)
    )
