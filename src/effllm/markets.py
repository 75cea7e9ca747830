"""Share prices around 27 January 2025: returns, market value, an event study, drawdowns.

The data ship with the package (``effllm/data/prices.csv``, ``shares.csv`` and
``nvda_sessions.csv``; provenance in ``effllm/data/SOURCES.md``): exchange closes of fourteen
series for the 81 trading days 2024-12-02..2025-03-31, split-adjusted and not dividend-adjusted,
and NVIDIA's share volume. Lab 5 uses them to reproduce NVIDIA's fall of 16.97% and to ask how
much of it the market as a whole explains.
Nothing here uses the network. The repository's ``tools/refresh_prices.py`` downloads the same
table again in the shipped format, for a maintainer who wants to check or extend it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from effllm.datafiles import DataFileError, location, read_csv
from effllm.validate import positive

PRICES_FILE = "prices.csv"
SHARES_FILE = "shares.csv"
SESSIONS_FILE = "nvda_sessions.csv"

NAMES: dict[str, str] = {
    "NVDA": "NVIDIA",
    "AVGO": "Broadcom",
    "TSM": "TSMC ADR",
    "ASML": "ASML ADR",
    "MSFT": "Microsoft",
    "GOOGL": "Alphabet (class A)",
    "GOOG": "Alphabet (class C)",
    "META": "Meta",
    "AMZN": "Amazon",
    "QQQ": "Nasdaq-100 ETF",
    "SPY": "S&P 500 ETF",
    "IXIC": "Nasdaq Composite",
    "SPX": "S&P 500",
    "SOX": "PHLX Semiconductor index",
}
# Who sells compute, who buys it, and the market around them (GOOG duplicates GOOGL).
GROUPS: dict[str, tuple[str, ...]] = {
    "chips": ("NVDA", "AVGO", "TSM", "ASML", "SOX"),
    "hyperscalers": ("MSFT", "GOOGL", "META", "AMZN"),
    "indices": ("IXIC", "SPX", "QQQ", "SPY"),
}

# Fewer returns than this cannot pin down a beta: the standard error of the slope grows like
# 1/sqrt(n), and published event studies use 120-250 days.
MIN_ESTIMATION_DAYS = 20


# ---------------------------------------------------------------------------------------------
# Loading, with checks


def load_prices(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The daily closes, tidy: one row per (date, ticker).

    Args:
        path: a file in the same format outside the package (for example one written by
            ``refresh``); by default the shipped ``effllm/data/prices.csv``.

    Returns:
        Columns ``date`` (Timestamp), ``ticker``, ``close`` (USD, or index points for IXIC, SPX
        and SOX) and ``volume`` (shares, nullable Int64; filled for NVDA only), sorted by ticker
        and date.

    Raises:
        DataFileError: the file is missing or malformed, names a (date, ticker) twice, has a close
            that is not positive, or lacks a close for some ticker on some date.
    """
    name: str | Path = PRICES_FILE if path is None else Path(path)
    df = read_csv(name, {"date": "date", "ticker": "str", "close": "float", "volume": "int?"})
    where = location(name)
    twice = df.duplicated(["date", "ticker"])
    if twice.any():
        row = df[twice].iloc[0]
        raise DataFileError(f"{where}: {row['ticker']} on {row['date']:%Y-%m-%d} appears twice")
    bad = df["close"] <= 0
    if bad.any():
        row = df[bad].iloc[0]
        raise DataFileError(
            f"{where}: close of {row['ticker']} on {row['date']:%Y-%m-%d} is {row['close']}, "
            "not a positive price"
        )
    all_dates = pd.DatetimeIndex(df["date"].unique())
    for ticker, rows in df.groupby("ticker", sort=True):
        gaps = all_dates.difference(pd.DatetimeIndex(rows["date"]))
        if len(gaps):
            raise DataFileError(f"{where}: {ticker} has no close on {gaps[0]:%Y-%m-%d}")
    df["volume"] = df["volume"].astype("Int64")
    return df.sort_values(["ticker", "date"]).reset_index(drop=True)


def check_tickers(prices: pd.DataFrame, tickers: str | Sequence[str] | None) -> list[str]:
    """``tickers`` as a list, each checked to be in ``prices`` (all, in ``NAMES`` order, if None).

    Raises ValueError naming the unknown ticker and listing the known ones.
    """
    present = set(prices["ticker"])
    known = [t for t in NAMES if t in present] + sorted(present - set(NAMES))
    if tickers is None:
        return known
    asked = [tickers] if isinstance(tickers, str) else list(tickers)
    for t in asked:
        if t not in known:
            raise ValueError(f"unknown ticker {t!r}; the data have {', '.join(sorted(known))}")
    return asked


def _in_range(dates: pd.DatetimeIndex, date: str | pd.Timestamp) -> pd.Timestamp:
    """``date`` as a Timestamp, checked to lie between the first and last day of ``dates``."""
    try:
        ts = pd.Timestamp(date)
    except (TypeError, ValueError):
        raise ValueError(f"{date!r} is not a date (use YYYY-MM-DD)") from None
    if not dates[0] <= ts <= dates[-1]:
        raise ValueError(
            f"{ts:%Y-%m-%d} is outside the data, which run from {dates[0]:%Y-%m-%d} "
            f"to {dates[-1]:%Y-%m-%d}"
        )
    return ts


def trading_day(dates: pd.DatetimeIndex, date: str | pd.Timestamp) -> pd.Timestamp:
    """``date`` as a Timestamp, checked to be one of the trading days ``dates``.

    Raises ValueError stating the data's range if the date lies outside it, or naming the
    trading days either side if the market was closed that day.
    """
    ts = _in_range(dates, date)
    if ts not in dates:
        before, after = dates[dates < ts][-1], dates[dates > ts][0]
        raise ValueError(
            f"{ts:%Y-%m-%d} ({ts:%A}) is not a trading day in the data; the nearest are "
            f"{before:%Y-%m-%d} and {after:%Y-%m-%d}"
        )
    return ts


def closes(
    prices: pd.DataFrame,
    tickers: str | Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Closes as a wide table: index ``date``, one column per ticker in the order asked.

    ``start`` and ``end`` (inclusive) must lie within the data but need not be trading days.
    """
    cols = check_tickers(prices, tickers)
    wide = prices.pivot(index="date", columns="ticker", values="close")[cols]
    wide.columns.name = None
    lo = wide.index[0] if start is None else _in_range(wide.index, start)
    hi = wide.index[-1] if end is None else _in_range(wide.index, end)
    if lo > hi:
        raise ValueError(f"start {lo:%Y-%m-%d} is after end {hi:%Y-%m-%d}")
    return wide.loc[lo:hi]


def volume(prices: pd.DataFrame, ticker: str = "NVDA") -> pd.Series:
    """Daily share volume of ``ticker`` (index ``date``). Only NVDA's ships with the course."""
    check_tickers(prices, ticker)
    rows = prices[prices["ticker"] == ticker].set_index("date")["volume"]
    if rows.isna().any():
        raise ValueError(f"the data have no volume for {ticker} (only for NVDA)")
    return rows.astype("int64").rename(ticker)


def load_sessions() -> pd.DataFrame:
    """NVIDIA's open, high, low and close on 24 and 27 January 2025 (index ``date``)."""
    cols = {
        "date": "date",
        "open": "float",
        "high": "float",
        "low": "float",
        "close": "float",
        "volume": "int",
    }
    return read_csv(SESSIONS_FILE, cols).set_index("date")


def load_shares() -> pd.DataFrame:
    """Reported share counts: ``ticker``, ``as_of`` (date), ``shares``, ``document``."""
    cols = {"ticker": "str", "as_of": "date", "shares": "int", "document": "str"}
    df = read_csv(SHARES_FILE, cols)
    return df.sort_values(["ticker", "as_of"]).reset_index(drop=True)


def shares_outstanding(ticker: str, on: str | pd.Timestamp) -> tuple[int, pd.Timestamp, str]:
    """The latest reported share count of ``ticker`` dated on or before ``on``.

    Returns ``(shares, as_of, document)``. Raises ValueError if no count is that early, or the
    ticker has none.
    """
    table = load_shares()
    mine = table[table["ticker"] == ticker]
    if mine.empty:
        have = ", ".join(sorted(table["ticker"].unique()))
        raise ValueError(f"no share count for {ticker!r}; {SHARES_FILE} has {have}")
    day = pd.Timestamp(on)
    usable = mine[mine["as_of"] <= day]
    if usable.empty:
        raise ValueError(
            f"the earliest share count of {ticker} is dated {mine['as_of'].iloc[0]:%Y-%m-%d}, "
            f"after {day:%Y-%m-%d}"
        )
    row = usable.iloc[-1]
    return int(row["shares"]), row["as_of"], str(row["document"])


# ---------------------------------------------------------------------------------------------
# Returns and market value


def _positive_prices(close: pd.DataFrame | pd.Series) -> None:
    if (close <= 0).to_numpy().any():
        raise ValueError("prices must be positive to compute returns")


def simple_returns(close: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Daily simple returns ``p_t / p_{t-1} - 1`` (the first day, which has none, is dropped)."""
    _positive_prices(close)
    return (close / close.shift(1) - 1).iloc[1:]


def log_returns(close: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Daily log returns ``ln(p_t / p_{t-1})``; unlike simple returns they add up over days."""
    _positive_prices(close)
    return np.log(close / close.shift(1)).iloc[1:]


def _day_after_a_close(
    dates: pd.DatetimeIndex, date: str | pd.Timestamp
) -> tuple[pd.Timestamp, int]:
    """Trading day ``date`` and its position in ``dates``, checked to have a previous close."""
    day = trading_day(dates, date)
    i = dates.get_loc(day)
    if i == 0:
        raise ValueError(f"{day:%Y-%m-%d} is the first day of the data; it has no previous close")
    return day, i


def day_returns(close: pd.DataFrame, date: str | pd.Timestamp) -> pd.Series:
    """Close-to-close simple return of every column on trading day ``date``."""
    _, i = _day_after_a_close(close.index, date)
    return close.iloc[i] / close.iloc[i - 1] - 1


def market_value_change(prev_close: float, close: float, shares: float) -> float:
    """Change in market value (USD) when the price moves from ``prev_close`` to ``close``.

    A company's market value is its share price times its shares outstanding, so with a fixed
    share count the change is ``(close - prev_close) * shares``; negative for a loss.
    """
    before, after = positive("prev_close", prev_close), positive("close", close)
    return (after - before) * positive("shares", shares)


def implied_shares(value_change: float, prev_close: float, close: float) -> float:
    """The share count that turns a price move into a printed change in market value."""
    if close == prev_close:
        raise ValueError("the price did not move, so no share count is implied")
    return value_change / (close - prev_close)


# ---------------------------------------------------------------------------------------------
# Event study with the market model


@dataclass(frozen=True)
class MarketModel:
    """``r_asset = alpha + beta * r_market + e``, fitted by ordinary least squares.

    ``resid_std`` is the residuals' standard deviation with ``n - 2`` degrees of freedom (two
    parameters were fitted); ``r_squared`` is the share of the asset's variance the market fits.
    """

    alpha: float
    beta: float
    resid_std: float
    r_squared: float
    n: int

    def expected(self, market_return: float | pd.Series) -> float | pd.Series:
        """The asset's normal return given the market's."""
        return self.alpha + self.beta * market_return


def fit_market_model(asset: pd.Series, market: pd.Series) -> MarketModel:
    """Least-squares fit of ``asset`` returns on ``market`` returns (aligned on the index)."""
    both = pd.concat([asset, market], axis=1, join="inner").dropna()
    n = len(both)
    if n < 3:
        raise ValueError(f"need at least 3 paired returns to fit alpha and beta, got {n}")
    a, m = both.iloc[:, 0].to_numpy(float), both.iloc[:, 1].to_numpy(float)
    if np.ptp(m) == 0:
        raise ValueError("the market return does not vary, so beta is undefined")
    dm = m - m.mean()
    beta = float(dm @ (a - a.mean()) / (dm @ dm))
    alpha = float(a.mean() - beta * m.mean())
    resid = a - alpha - beta * m
    ssr, sst = float(resid @ resid), float(((a - a.mean()) ** 2).sum())
    return MarketModel(
        alpha=alpha,
        beta=beta,
        resid_std=math.sqrt(ssr / (n - 2)),  # n >= 3, checked above
        r_squared=1 - ssr / sst if sst > 0 else float("nan"),
        n=n,
    )


@dataclass(frozen=True)
class EventStudy:
    """A market-model event study of one asset around one day.

    ``days`` has one row per event-window day (index ``date``) with columns ``offset`` (trading
    days from the event), ``actual``, ``expected`` (alpha + beta * market), ``abnormal``
    (actual - expected), ``car`` (abnormal returns summed from the window's first day) and
    ``t`` (abnormal / resid_std). All returns are simple daily returns, as fractions.
    """

    ticker: str
    market: str
    event_date: pd.Timestamp
    estimation_start: pd.Timestamp
    estimation_end: pd.Timestamp
    model: MarketModel
    days: pd.DataFrame

    @property
    def car(self) -> float:
        """Cumulative abnormal return over the whole event window."""
        return float(self.days["car"].iloc[-1])

    @property
    def car_t(self) -> float:
        """``car / (resid_std * sqrt(L))`` for an L-day window.

        Treats abnormal returns as independent with the estimation window's variance; it ignores
        the (small) extra variance from estimating alpha and beta.
        """
        return self.car / (self.model.resid_std * math.sqrt(len(self.days)))

    @property
    def event(self) -> pd.Series:
        """The event day's row of ``days``."""
        return self.days.loc[self.event_date]


def event_study(
    returns: pd.DataFrame,
    ticker: str,
    market: str,
    event_date: str | pd.Timestamp,
    window: tuple[int, int] = (-1, 1),
    estimation_days: int | None = None,
) -> EventStudy:
    """Abnormal returns of ``ticker`` around ``event_date`` against a market model.

    Args:
        returns: daily simple returns, index dates, with columns ``ticker`` and ``market``.
        window: first and last day of the event window, in trading days from the event
            (``(-1, 1)`` is the day before, the day and the day after).
        estimation_days: how many returns, ending the day before the event window opens, to fit
            alpha and beta on; by default all of them (at least ``MIN_ESTIMATION_DAYS``).
    """
    for col in (ticker, market):
        if col not in returns.columns:
            raise ValueError(f"unknown column {col!r}; returns has {', '.join(returns.columns)}")
    lo, hi = window
    if lo > hi:
        raise ValueError(f"event window {window} starts after it ends")
    dates = returns.index
    day = trading_day(dates, event_date)
    i = dates.get_loc(day)
    if i + lo < 0 or i + hi >= len(dates):
        raise ValueError(
            f"event window {window} around {day:%Y-%m-%d} runs outside the returns, which run "
            f"from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}"
        )
    available = i + lo
    n = available if estimation_days is None else estimation_days
    if n < MIN_ESTIMATION_DAYS or n > available:
        raise ValueError(
            f"estimation window of {n} returns: {available} are available before the event "
            f"window opens on {dates[i + lo]:%Y-%m-%d}, and the market model needs at least "
            f"{MIN_ESTIMATION_DAYS}"
        )
    est = returns.iloc[available - n : available]
    model = fit_market_model(est[ticker], est[market])
    win = returns.iloc[i + lo : i + hi + 1]
    days = pd.DataFrame({"offset": np.arange(lo, hi + 1), "actual": win[ticker]})
    days["expected"] = model.expected(win[market])
    days["abnormal"] = days["actual"] - days["expected"]
    days["car"] = days["abnormal"].cumsum()
    days["t"] = days["abnormal"] / model.resid_std
    return EventStudy(
        ticker=ticker,
        market=market,
        event_date=day,
        estimation_start=est.index[0],
        estimation_end=est.index[-1],
        model=model,
        days=days,
    )


# ---------------------------------------------------------------------------------------------
# Drawdown and recovery


def drawdown(close: pd.Series) -> pd.Series:
    """Fall from the highest close so far, as a fraction (0 at a new high, negative below it)."""
    _positive_prices(close)
    return close / close.cummax() - 1


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall from a running high, and when (if ever) the high was regained."""

    peak_date: pd.Timestamp
    peak: float
    trough_date: pd.Timestamp
    trough: float
    depth: float
    recovery_date: pd.Timestamp | None


def recovery_date(close: pd.Series, level: float, after: str | pd.Timestamp) -> pd.Timestamp | None:
    """The first date after ``after`` on which ``close`` is back at ``level`` or above; None if
    that does not happen within the data."""
    later = close[close.index > pd.Timestamp(after)]
    back = later[later >= level]
    return back.index[0] if len(back) else None


def max_drawdown(close: pd.Series) -> Drawdown:
    """The largest peak-to-trough fall of ``close`` and the first later close regaining the peak."""
    if len(close) < 2:
        raise ValueError(f"need at least two closes for a drawdown, got {len(close)}")
    dd = drawdown(close)
    trough_date = dd.idxmin()
    peak_date = close.loc[:trough_date].idxmax()
    return Drawdown(
        peak_date=peak_date,
        peak=float(close[peak_date]),
        trough_date=trough_date,
        trough=float(close[trough_date]),
        depth=float(dd[trough_date]),
        recovery_date=recovery_date(close, close[peak_date], trough_date),
    )


def retracement(close: pd.Series, event_date: str | pd.Timestamp) -> pd.Series:
    """Share of the event day's fall that later closes have won back (1 = all of it).

    Index: the event day and every later day; the event day itself is 0.
    """
    day, i = _day_after_a_close(close.index, event_date)
    before, low = close.iloc[i - 1], close.iloc[i]
    if not low < before:
        raise ValueError(f"{close.name} did not fall on {day:%Y-%m-%d}: nothing to retrace")
    return (close.iloc[i:] - low) / (before - low)


# ---------------------------------------------------------------------------------------------
# Checking printed claims


def _round(x: Decimal, exponent: int) -> Decimal:
    return x.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)


def check_claim(
    printed: str,
    data: float | str,
    qualifier: str = "=",
    rel_tol: float = 0.0,
) -> str:
    """Judge a printed figure against the data: ``"right"``, ``"close"`` or ``"wrong"``.

    Args:
        printed: the figure as printed, in the data's units (``"-16.97"``, ``"589"``); its
            digits set the precision it claims. For words (a weekday, a date), compare text.
        data: the value computed from the data (or the text, for words).
        qualifier: ``"="`` (the figure itself), ``"nearly"`` (up to 5% above the data, never
            below), ``"about"`` (within 5% either way), ``"above"`` / ``"below"`` (the data must
            be above / below the figure: "more than", "over ... lower").
        rel_tol: for ``"="``, a relative error that still counts as ``"close"``: zero for what the
            exchange records exactly (a close, a percentage move), more for figures that need an
            outside input, such as a share count.

    A ``"="`` figure is right if the data, rounded to the printed digits, give it; or if the data
    rounded first to two decimals (as agencies report moves) and then to the printed digits do.
    """
    if isinstance(data, str):
        return "right" if printed.strip().lower() == data.strip().lower() else "wrong"
    claim = Decimal(printed.strip().replace(",", ""))
    value = Decimal(repr(float(data)))
    digits = int(claim.as_tuple().exponent)
    if qualifier == "=":
        readings = [_round(value, digits)]
        if digits > -2:  # a coarser figure may have been rounded from the two-decimal one
            readings.append(_round(_round(value, -2), digits))
        if claim in readings:
            return "right"
        return "close" if abs(claim - value) <= Decimal(repr(rel_tol)) * abs(value) else "wrong"
    c, v = float(claim), float(value)
    if qualifier == "nearly":
        ok = 0 <= abs(c) - abs(v) <= 0.05 * abs(c) and c * v > 0
    elif qualifier == "about":
        ok = abs(v - c) <= 0.05 * abs(c)
    elif qualifier == "above":
        ok = v > c
    elif qualifier == "below":
        ok = v < c
    else:
        raise ValueError(
            f"unknown qualifier {qualifier!r}; use '=', 'nearly', 'about', 'above' or 'below'"
        )
    return "right" if ok else "wrong"
