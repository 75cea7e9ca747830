"""Lab 5's checks: returns, market value, the market model, abnormal returns, CAR, an event study.

Each function takes the student's function, checks it against :mod:`effllm.markets` with
:func:`effllm.checks.verify`, and returns the function the lab goes on with. Returns are simple
daily returns as fractions; return series are 1-D numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from effllm import markets
from effllm.checks import Case, Mistake, verify

Fit = tuple[float, float, float]  # (alpha, beta, sigma) of the market model


def _market_data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n days of a stock's and a market's returns, seeded: r_i = alpha + beta r_m + noise."""
    rng = np.random.default_rng(seed)
    r_m = rng.normal(0.0005, 0.01, n)
    alpha, beta, sigma = rng.uniform(-0.003, 0.003), rng.uniform(0.5, 2.5), rng.uniform(0.01, 0.04)
    return alpha + beta * r_m + rng.normal(0, sigma, n), r_m


def _lab_table(ticker: str = "NVDA", market: str = "SPX") -> pd.DataFrame:
    """The lab's daily returns of ``ticker`` and ``market``, 3 Dec 2024 to 31 Mar 2025."""
    return markets.simple_returns(markets.closes(markets.load_prices(), [ticker, market]))


def _lab_returns(ticker: str = "NVDA", market: str = "SPX") -> tuple[np.ndarray, np.ndarray]:
    """The lab's returns as two arrays (see ``_lab_table``)."""
    r = _lab_table(ticker, market)
    return r[ticker].to_numpy(), r[market].to_numpy()


def _position(date: str) -> int:
    """The position of trading day ``date`` in the lab's returns."""
    return int(_lab_table().index.get_loc(pd.Timestamp(date)))


# ---------------------------------------------------------------------------------------------
# Returns and market value


def _simple_return(P_prev: float | pd.Series, P: float | pd.Series) -> float | pd.Series:
    """``markets.simple_returns`` from two closes: numbers, or two rows of closes (Series)."""
    if isinstance(P, pd.Series):
        return markets.simple_returns(pd.DataFrame([P_prev, P])).iloc[0]
    return float(markets.simple_returns(pd.Series([P_prev, P])).iloc[0])


def simple_return(student: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """r_t = P_t / P_{t-1} - 1."""
    rng = np.random.default_rng(0)
    before = np.exp(rng.uniform(np.log(5), np.log(5000), 6))
    after = before * (1 + rng.uniform(-0.25, 0.25, 6))
    cases = [
        Case((float(p0), float(p1)), f"a close of {p0:.2f} then {p1:.2f}")
        for p0, p1 in zip(before, after, strict=True)
    ]
    return verify(
        "simple_return",
        student,
        _simple_return,
        [Case((142.62, 118.42), "NVIDIA's closes of 24 and 27 Jan 2025"), *cases],
        [
            Mistake(
                lambda p0, p1: math.log(p1 / p0),
                "that is the log return ln(P_t / P_{t-1}); the simple return is "
                "P_t / P_{t-1} - 1 (the two differ visibly for a move of several percent)",
            ),
            Mistake(
                lambda p0, p1: p0 / p1 - 1,
                "the ratio is backwards: divide today's close by yesterday's, P_t / P_{t-1} - 1",
            ),
            Mistake(
                lambda p0, p1: (p1 - p0) / p1,
                "it divides the change by today's close; a return is relative to where the "
                "price started, yesterday's close P_{t-1}",
            ),
            Mistake(
                lambda p0, p1: 100 * (p1 / p0 - 1),
                "it returns a percentage; return a fraction (-0.17, not -17)",
            ),
            Mistake(
                lambda p0, p1: p1 - p0,
                "that is the price change in dollars; divide it by yesterday's close",
            ),
        ],
        stand_in="markets.simple_returns",
    )


def market_value_change(
    student: Callable[[float, float, float], float],
) -> Callable[[float, float, float], float]:
    """ΔV = shares × (P_t - P_{t-1})."""
    rng = np.random.default_rng(1)
    before = np.exp(rng.uniform(np.log(5), np.log(5000), 5))
    after = before * (1 + rng.uniform(-0.2, 0.2, 5))
    shares = np.exp(rng.uniform(np.log(1e8), np.log(3e10), 5))
    cases = [
        Case((float(p0), float(p1), float(s)), f"{s:.3g} shares from {p0:.2f} to {p1:.2f}")
        for p0, p1, s in zip(before, after, shares, strict=True)
    ]
    return verify(
        "market_value_change",
        student,
        markets.market_value_change,
        [Case((142.62, 118.42, 24_477_000_000.0), "NVIDIA on 27 Jan 2025"), *cases],
        [
            Mistake(
                lambda p0, p1, s: s * (p0 - p1),
                "the sign is flipped: a fall in price is a loss, a negative change "
                "(new price minus old)",
            ),
            Mistake(
                lambda p0, p1, s: s * (p1 / p0 - 1),
                "it multiplies the shares by the return, a fraction; multiply them by the "
                "change in price, in dollars",
            ),
            Mistake(
                lambda p0, p1, s: s * (p1 - p0) / 1e9,
                "it returns billions of dollars; return dollars (the lab divides by 1e9 "
                "itself when it prints)",
            ),
            Mistake(
                lambda p0, p1, s: s * p1,
                "that is the market value after the move; return its change, "
                "shares x (P_t - P_{t-1})",
            ),
        ],
        stand_in="markets.market_value_change",
    )


# ---------------------------------------------------------------------------------------------
# The market model


def _fit(r_i: np.ndarray, r_m: np.ndarray) -> Fit:
    """The course's fit, ``markets.fit_market_model``, as (alpha, beta, sigma)."""
    model = markets.fit_market_model(pd.Series(r_i), pd.Series(r_m))
    return model.alpha, model.beta, model.resid_std


def _resid(r_i: np.ndarray, r_m: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return r_i - alpha - beta * r_m


def _fit_mistake(which: str) -> Callable[[np.ndarray, np.ndarray], tuple]:
    """A wrong fit: the right alpha, beta and sigma with one piece done a common wrong way."""

    def fit(r_i: np.ndarray, r_m: np.ndarray) -> tuple:
        alpha, beta, sigma = _fit(r_i, r_m)
        n = len(r_i)
        e = _resid(r_i, r_m, alpha, beta)
        if which == "swapped":
            return beta, alpha, sigma
        if which == "reverse":
            b = float(np.cov(r_i, r_m)[0, 1] / np.var(r_i, ddof=1))
            a = float(r_i.mean() - b * r_m.mean())
            return a, b, float(np.std(_resid(r_i, r_m, a, b), ddof=2))
        if which == "correlation":
            b = float(np.corrcoef(r_i, r_m)[0, 1])
            a = float(r_i.mean() - b * r_m.mean())
            return a, b, float(np.std(_resid(r_i, r_m, a, b), ddof=2))
        if which == "alpha_mean":
            return float(r_i.mean()), beta, sigma
        if which in ("ddof0", "ddof1"):
            return alpha, beta, float(np.sqrt(e @ e / (n - (0 if which == "ddof0" else 1))))
        if which == "returns_std":
            return alpha, beta, float(np.std(r_i, ddof=2))
        raise ValueError(which)

    return fit


def market_model(
    student: Callable[[np.ndarray, np.ndarray], Fit],
) -> Callable[[np.ndarray, np.ndarray], Fit]:
    """OLS of r_i on r_m: (alpha, beta, sigma) with sigma = sqrt(sum e^2 / (n - 2))."""
    r_i, r_m = _lab_returns()
    n_est = _position("2025-01-24")  # the lab's estimation window: every return before it
    cases = [Case((r_i[:n_est], r_m[:n_est]), "NVIDIA on the S&P 500, 3 Dec 2024 to 23 Jan 2025")]
    for seed, n in ((2, 30), (3, 60), (4, 250)):
        cases.append(Case(_market_data(seed, n), f"{n} days of made-up returns"))
    return verify(
        "market_model",
        student,
        _fit,
        cases,
        [
            Mistake(
                _fit_mistake("swapped"),
                "it returns (beta, alpha, sigma); return (alpha, beta, sigma): the intercept first",
            ),
            Mistake(
                _fit_mistake("reverse"),
                "beta divides the covariance by the variance of the stock's returns; regress the "
                "stock on the market: divide by the variance of the *market's* returns",
            ),
            Mistake(
                _fit_mistake("correlation"),
                "that beta is the correlation of the two returns; beta is "
                "cov(r_i, r_m) / var(r_m), which also scales by how much more the stock moves",
            ),
            Mistake(
                _fit_mistake("alpha_mean"),
                "alpha is the stock's mean return; it is the mean left after the market's part: "
                "mean(r_i) - beta * mean(r_m)",
            ),
            Mistake(
                _fit_mistake("ddof0"),
                "sigma divides the sum of squared residuals by n (numpy's default std); two "
                "parameters were fitted, so divide by n - 2",
            ),
            Mistake(
                _fit_mistake("ddof1"),
                "sigma divides the sum of squared residuals by n - 1 (pandas' default std); two "
                "parameters were fitted, so divide by n - 2",
            ),
            Mistake(
                _fit_mistake("returns_std"),
                "sigma is the spread of the stock's returns; it must be the spread of the "
                "residuals e = r_i - alpha - beta * r_m, what the market does not explain",
            ),
        ],
        stand_in="markets.fit_market_model",
    )


# ---------------------------------------------------------------------------------------------
# Abnormal returns and CAR


def _abnormal(r_i: float, r_m: float, alpha: float, beta: float, sigma: float) -> tuple:
    """The lines of ``markets.event_study``: abnormal = actual - expected, t = abnormal / σ."""
    model = markets.MarketModel(alpha=alpha, beta=beta, resid_std=sigma, r_squared=math.nan, n=0)
    abnormal = r_i - model.expected(r_m)
    return abnormal, abnormal / model.resid_std


def abnormal_return(
    student: Callable[[float, float, float, float, float], tuple[float, float]],
) -> Callable[[float, float, float, float, float], tuple[float, float]]:
    """AR = r_i - (alpha + beta r_m) and t = AR / sigma."""
    rng = np.random.default_rng(5)
    cases = [Case((-0.1697, -0.0146, 0.00388, 1.87, 0.0206), "NVIDIA's 27 Jan 2025, roughly")]
    for _ in range(6):
        r_i, r_m = float(rng.normal(0, 0.04)), float(rng.normal(0, 0.015))
        alpha, beta = float(rng.uniform(-0.004, 0.004)), float(rng.uniform(0.4, 2.5))
        sigma = float(rng.uniform(0.008, 0.04))
        cases.append(Case((r_i, r_m, alpha, beta, sigma), f"r_i={r_i:+.4f}, r_m={r_m:+.4f}"))
    return verify(
        "abnormal_return",
        student,
        _abnormal,
        cases,
        [
            Mistake(
                lambda r_i, r_m, a, b, s: (r_i - b * r_m, (r_i - b * r_m) / s),
                "the expected return leaves out alpha: it is alpha + beta * r_m",
            ),
            Mistake(
                lambda r_i, r_m, a, b, s: (r_i - r_m, (r_i - r_m) / s),
                "it subtracts the market's return itself; the model expects alpha + beta * r_m",
            ),
            Mistake(
                lambda r_i, r_m, a, b, s: (a + b * r_m - r_i, (a + b * r_m - r_i) / s),
                "the sign is flipped: abnormal = actual - expected, negative when the stock "
                "did worse than the model expected",
            ),
            Mistake(
                lambda r_i, r_m, a, b, s: (r_i - a - b * r_m, (r_i - a - b * r_m) / s**2),
                "t divides by sigma squared, the variance; divide by the standard deviation sigma",
            ),
            Mistake(
                lambda r_i, r_m, a, b, s: (100 * (r_i - a - b * r_m), (r_i - a - b * r_m) / s),
                "the abnormal return is a percentage; return a fraction",
            ),
        ],
        stand_in="markets.event_study's abnormal and t",
    )


def _car(AR: np.ndarray, sigma: float) -> tuple[float, float]:
    """``EventStudy.car`` and ``EventStudy.car_t`` for abnormal returns ``AR``."""
    L = len(AR)
    dates = pd.bdate_range("2025-01-01", periods=L)
    study = markets.EventStudy(
        ticker="",
        market="",
        event_date=dates[0],
        estimation_start=dates[0],
        estimation_end=dates[0],
        model=markets.MarketModel(alpha=0.0, beta=0.0, resid_std=sigma, r_squared=math.nan, n=0),
        days=pd.DataFrame({"car": np.cumsum(np.asarray(AR, dtype=float))}, index=dates),
    )
    return study.car, study.car_t


def cumulative_abnormal_return(
    student: Callable[[np.ndarray, float], tuple[float, float]],
) -> Callable[[np.ndarray, float], tuple[float, float]]:
    """CAR = sum of AR_t over the window, t = CAR / (sigma sqrt(L))."""
    rng = np.random.default_rng(6)
    cases = [Case((np.array([-0.0313, -0.1425, 0.0734]), 0.0206), "NVIDIA's 24-28 Jan, roughly")]
    for L in (2, 4, 7, 12):
        AR, sigma = rng.normal(-0.01, 0.03, L), float(rng.uniform(0.008, 0.04))
        cases.append(Case((AR, sigma), f"{L} made-up abnormal returns"))
    return verify(
        "cumulative_abnormal_return",
        student,
        _car,
        cases,
        [
            Mistake(
                lambda AR, s: (AR.sum(), AR.sum() / (s * len(AR))),
                "t divides by sigma * L; the noise of a sum of L independent days grows like "
                "sqrt(L), so divide by sigma * sqrt(L)",
            ),
            Mistake(
                lambda AR, s: (AR.sum(), AR.sum() / s),
                "t divides by one day's sigma; a sum of L days has standard deviation "
                "sigma * sqrt(L)",
            ),
            Mistake(
                lambda AR, s: (AR.mean(), AR.mean() / (s * np.sqrt(len(AR)))),
                "it averages the abnormal returns; the CAR is their sum",
            ),
            Mistake(
                lambda AR, s: (np.prod(1 + AR) - 1, (np.prod(1 + AR) - 1) / (s * np.sqrt(len(AR)))),
                "it compounds the abnormal returns; the CAR is their plain sum",
            ),
            Mistake(
                lambda AR, s: (100 * AR.sum(), AR.sum() / (s * np.sqrt(len(AR)))),
                "the CAR is a percentage; return a fraction",
            ),
        ],
        stand_in="markets.EventStudy.car and car_t",
    )


# ---------------------------------------------------------------------------------------------
# The whole event study (a build exercise)


def _event_study(
    r_i: np.ndarray, r_m: np.ndarray, event: int, window: tuple[int, int]
) -> tuple[float, float]:
    """``markets.event_study`` on two return arrays: (CAR, t), fitted on every day before."""
    dates = pd.bdate_range("2024-01-01", periods=len(r_i))
    returns = pd.DataFrame({"asset": r_i, "market": r_m}, index=dates)
    study = markets.event_study(returns, "asset", "market", dates[event], window=tuple(window))
    return study.car, study.car_t


def _study_mistake(which: str) -> Callable:
    """A wrong event study: the right steps with one window or statistic done a common wrong way."""

    def study(r_i: np.ndarray, r_m: np.ndarray, event: int, window: tuple[int, int]) -> tuple:
        lo, hi = window
        end = {"leak": event + hi + 1, "to_event": event}.get(which, event + lo)
        alpha, beta, sigma = _fit(r_i[:end], r_m[:end])
        AR = _resid(r_i[event + lo : event + hi + 1], r_m[event + lo : event + hi + 1], alpha, beta)
        if which == "event_day":
            return AR[-lo], AR[-lo] / sigma
        if which == "no_sqrt":
            return AR.sum(), AR.sum() / (sigma * len(AR))
        return AR.sum(), AR.sum() / (sigma * math.sqrt(len(AR)))

    return study


def event_study(
    student: Callable[[np.ndarray, np.ndarray, int, tuple[int, int]], tuple[float, float]],
) -> Callable[[np.ndarray, np.ndarray, int, tuple[int, int]], tuple[float, float]]:
    """(CAR, t) of day ``event`` over ``window``, the model fitted on every earlier day."""
    r_i, r_m = _lab_returns()
    cases = [
        Case((r_i, r_m, _position(day), window), f"NVIDIA on {day}, window {window}")
        for day, window in (
            ("2025-01-27", (-1, 1)),
            ("2025-01-27", (0, 0)),
            ("2025-01-13", (-2, 3)),
        )
    ]
    for seed, event, window in ((7, 40, (-1, 1)), (8, 70, (-3, 2)), (9, 25, (0, 4))):
        cases.append(Case((*_market_data(seed, 90), event, window), f"made-up returns, {window}"))
    return verify(
        "event_study",
        student,
        _event_study,
        cases,
        [
            Mistake(
                _study_mistake("leak"),
                "alpha and beta are fitted on days inside the event window; the estimation "
                "window must close before the event window opens, or the event itself shapes "
                "what counts as normal",
            ),
            Mistake(
                _study_mistake("to_event"),
                "the estimation window runs up to the event day, into an event window that "
                "opens earlier: stop before day event + lo",
            ),
            Mistake(
                _study_mistake("event_day"),
                "it returns the event day's abnormal return; the CAR sums the whole window",
            ),
            Mistake(
                _study_mistake("no_sqrt"),
                "t divides by sigma * L; divide by sigma * sqrt(L)",
            ),
        ],
        stand_in="markets.event_study",
    )
