import math
import re

import numpy as np
import pandas as pd
import pytest

from effllm import markets as mk
from effllm.datafiles import DataFileError, data_text


def _sources_section(name: str) -> str:
    """The section of SOURCES.md about data file ``name``, white space folded."""
    text = data_text("SOURCES.md").split(f"## {name}\n")[1].split("\n## ")[0]
    return " ".join(text.split())


# --- the shipped data -----------------------------------------------------------------------


def test_share_counts_are_those_sources_md_states():
    # "24,490 million on 15 November 2024 ... **24,477 million on 26 January 2025** ..."
    stated = re.findall(
        r"([\d,]+) million on (\d{1,2} \w+ \d{4})", _sources_section(mk.SHARES_FILE)
    )
    shipped = mk.load_shares()
    assert len(stated) == len(shipped) == 3
    for (millions, day), row in zip(stated, shipped.itertuples(), strict=True):
        assert (row.shares, row.as_of) == (
            int(millions.replace(",", "")) * 10**6,
            pd.Timestamp(day),
        )
    # each count is also printed in the document column, in the filing's own rounding
    for row in shipped.itertuples():
        printed = re.search(r"([\d.,]+) (billion|million)", row.document)
        scale = 10**9 if printed[2] == "billion" else 10**6
        assert row.shares == round(float(printed[1].replace(",", "")) * scale)


def test_sessions_agree_with_sources_md_and_the_daily_closes():
    s = mk.load_sessions()
    on_27 = s.loc["2025-01-27"]
    assert (
        f"between {on_27['low']:.2f} and {on_27['high']:.2f} before closing at {on_27['close']:.2f}"
        in _sources_section(mk.SESSIONS_FILE)
    )
    assert (s["low"] <= s[["open", "close"]].min(axis=1)).all()
    assert (s[["open", "close"]].max(axis=1) <= s["high"]).all()
    p = mk.load_prices()
    nvda = p[p["ticker"] == "NVDA"].set_index("date").loc[s.index]
    assert (nvda["close"] == s["close"]).all() and (nvda["volume"] == s["volume"]).all()


def test_closes_give_the_moves_the_book_prints(repo_text):
    # The January chapter cites NVIDIA's close to the exchange data (marketbase2025); the other
    # moves, the volume and the rebound are glued into the market chapter from Lab 5's run.
    text = repo_text("book/january-2025.md")
    c = mk.closes(mk.load_prices())
    before, on = (c.loc[d] for d in ("2025-01-24", "2025-01-27"))
    fall = 100 * (1 - on / before)
    assert (
        f"NVIDIA closed at \\${on['NVDA']:.2f}, down from \\${before['NVDA']:.2f} on Friday 24 "
        f"January, a fall of {fall['NVDA']:.2f}%"
    ) in text
    assert f"closed {fall['NVDA']:.2f}% lower" in text
    # SOURCES.md records the one volume on which two feeds disagree.
    volume_31 = mk.volume(mk.load_prices()).loc["2025-01-31"]
    assert f"NVDA's volume on 31 January 2025 is {volume_31:,} here" in _sources_section(
        mk.PRICES_FILE
    )


def test_series_that_track_each_other_move_together():
    # An ETF and its index, and Alphabet's two share classes, differ by a fraction of a percent a
    # day (dividends, fees); a mistyped close in either breaks that on two days.
    r = mk.simple_returns(mk.closes(mk.load_prices()))
    for a, b, limit in (("SPY", "SPX", 0.005), ("GOOGL", "GOOG", 0.005), ("QQQ", "IXIC", 0.01)):
        assert (r[a] - r[b]).abs().max() < limit, (a, b)
    # No series moved by 30% or more in a day: a slipped decimal point would.
    assert (r.abs() < 0.3).all().all()


def test_shipped_prices_cover_the_window():
    p = mk.load_prices()
    dates = pd.DatetimeIndex(p["date"].unique())
    assert len(dates) == 81 and set(p["ticker"]) == set(mk.NAMES)
    assert dates[0] == pd.Timestamp("2024-12-02") and dates[-1] == pd.Timestamp("2025-03-31")
    for closed in ("2025-01-09", "2025-01-20", "2025-02-17", "2024-12-25"):
        assert pd.Timestamp(closed) not in dates
    assert p.loc[p["ticker"] == "NVDA", "volume"].notna().all()
    assert p.loc[p["ticker"] != "NVDA", "volume"].isna().all()
    assert mk.volume(p).loc["2025-01-27"] == 818_830_900


def test_headline_move_and_value_lost():
    c = mk.closes(mk.load_prices(), ["NVDA", "SOX"])
    move = mk.day_returns(c, "2025-01-27")
    assert round(100 * move["NVDA"], 2) == -16.97 and move["SOX"] < -0.09
    shares, as_of, _ = mk.shares_outstanding("NVDA", "2025-01-27")
    lost = -mk.market_value_change(c.loc["2025-01-24", "NVDA"], c.loc["2025-01-27", "NVDA"], shares)
    assert abs(lost / 1e9 - 592.34) < 0.01 and as_of == pd.Timestamp("2025-01-26")


def test_every_group_ticker_has_a_name():
    assert {t for group in mk.GROUPS.values() for t in group} <= set(mk.NAMES)


# --- validation -----------------------------------------------------------------------------


def test_unknown_ticker_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown ticker 'NVDIA'; the data have AMZN, ASML"):
        mk.closes(mk.load_prices(), ["NVDA", "NVDIA"])


@pytest.mark.parametrize(
    "date,message",
    [
        ("2025-04-01", r"2025-04-01 is outside the data, which run from 2024-12-02 to 2025-03-31"),
        ("2024-11-29", r"outside the data"),
        ("2025-01-20", r"2025-01-20 \(Monday\) is not a trading day.*2025-01-17 and 2025-01-21"),
        ("27/01/2025x", r"not a date"),
    ],
)
def test_bad_dates_say_what_is_wrong(date, message):
    c = mk.closes(mk.load_prices(), "NVDA")
    with pytest.raises(ValueError, match=message):
        mk.day_returns(c, date)


def test_date_bounds_of_closes_are_checked():
    p = mk.load_prices()
    assert len(mk.closes(p, "NVDA", "2025-01-25", "2025-01-31")) == 5  # from a Saturday
    with pytest.raises(ValueError, match="outside the data"):
        mk.closes(p, "NVDA", end="2025-06-30")
    with pytest.raises(ValueError, match="is after end"):
        mk.closes(p, "NVDA", "2025-02-01", "2025-01-01")


GOOD = "date,ticker,close,volume\n2025-01-24,NVDA,142.62,1\n2025-01-24,SPX,6101.24,\n"


@pytest.mark.parametrize(
    "extra,message",
    [
        ("2025-01-24,NVDA,142.62,1\n", r"prices.csv: NVDA on 2025-01-24 appears twice"),
        ("2025-01-27,NVDA,118.42,1\n", r"prices.csv: SPX has no close on 2025-01-27"),
        ("2025-01-27,NVDA,-1,1\n2025-01-27,SPX,1,\n", r"close of NVDA on 2025-01-27 is -1.0"),
        ("2025-01-27,NVDA,,1\n", r"prices.csv, line 4: column 'close' is empty"),
    ],
)
def test_malformed_price_file_names_file_and_problem(fake_data_package, extra, message):
    (fake_data_package / "prices.csv").write_text(GOOD + extra)
    with pytest.raises(DataFileError, match=message):
        mk.load_prices()


def test_missing_price_file_is_named(fake_data_package):
    with pytest.raises(DataFileError, match=r"effllm/data/prices.csv is missing"):
        mk.load_prices()


def test_prices_load_from_a_path(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(GOOD)
    assert list(mk.load_prices(path)["ticker"]) == ["NVDA", "SPX"]
    with pytest.raises(DataFileError, match=r"nope.csv does not exist"):
        mk.load_prices(tmp_path / "nope.csv")


def test_volume_only_for_nvda():
    with pytest.raises(ValueError, match="no volume for SPX"):
        mk.volume(mk.load_prices(), "SPX")


# --- returns and market value ---------------------------------------------------------------


def test_simple_and_log_returns():
    close = pd.Series([100.0, 110.0, 99.0], index=pd.date_range("2025-01-01", periods=3))
    assert np.allclose(mk.simple_returns(close), [0.10, -0.10])
    logs = mk.log_returns(close)
    assert math.isclose(logs.sum(), math.log(99 / 100))  # log returns add up over days
    with pytest.raises(ValueError, match="positive"):
        mk.simple_returns(close.replace(110.0, 0.0))


def test_market_value_change_and_implied_shares():
    assert mk.market_value_change(10.0, 8.0, 1000) == -2000.0
    assert math.isclose(mk.implied_shares(-589e9, 142.62, 118.42) / 1e9, 24.3388, abs_tol=1e-4)
    with pytest.raises(ValueError, match="shares must be positive and finite, got 0"):
        mk.market_value_change(10.0, 8.0, 0)
    with pytest.raises(ValueError, match="did not move"):
        mk.implied_shares(1.0, 5.0, 5.0)


def test_shares_outstanding_picks_the_latest_count_not_after_the_date():
    assert mk.shares_outstanding("NVDA", "2025-01-24")[0] == 24_490_000_000
    assert mk.shares_outstanding("NVDA", "2025-03-31")[0] == 24_400_000_000
    with pytest.raises(ValueError, match="earliest share count of NVDA is dated 2024-11-15"):
        mk.shares_outstanding("NVDA", "2024-01-01")
    with pytest.raises(ValueError, match="no share count for 'AMD'"):
        mk.shares_outstanding("AMD", "2025-01-27")


# --- event study ----------------------------------------------------------------------------


def synthetic_returns(alpha=0.001, beta=1.8, shock=-0.15, noise=0.0, n=60, event=45, seed=0):
    """Market returns at random; the asset follows alpha + beta * market (+ noise), plus a known
    shock on day ``event``."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-11-01", periods=n)
    market = rng.normal(0.0, 0.01, n)
    asset = alpha + beta * market + rng.normal(0.0, noise, n) if noise else alpha + beta * market
    asset[event] += shock
    return pd.DataFrame({"X": asset, "M": market}, index=dates), dates[event]


def test_market_model_recovers_alpha_and_beta():
    r, _ = synthetic_returns(shock=0.0)
    m = mk.fit_market_model(r["X"], r["M"])
    assert math.isclose(m.alpha, 0.001, abs_tol=1e-12) and math.isclose(m.beta, 1.8)
    assert m.resid_std < 1e-12 and math.isclose(m.r_squared, 1.0) and m.n == 60
    with pytest.raises(ValueError, match="does not vary"):
        mk.fit_market_model(r["X"], r["M"] * 0 + 0.01)


def test_event_study_finds_a_known_shock():
    r, day = synthetic_returns(noise=0.005)
    es = mk.event_study(r, "X", "M", day, window=(-1, 1))
    assert es.model.n == 44 and es.estimation_end == r.index[43]
    assert abs(es.model.beta - 1.8) < 0.15 and abs(es.model.resid_std - 0.005) < 0.0015
    assert abs(es.event["abnormal"] - (-0.15)) < 0.015
    assert es.event["t"] < -15 and es.car_t < -8
    assert list(es.days["offset"]) == [-1, 0, 1]
    assert math.isclose(es.car, es.days["abnormal"].sum())
    # the market's part of the day's move is what the model expects, the rest is abnormal
    assert math.isclose(es.event["expected"] + es.event["abnormal"], r.loc[day, "X"])


def test_event_study_without_a_shock_finds_nothing():
    r, day = synthetic_returns(shock=0.0, noise=0.005, seed=1)
    es = mk.event_study(r, "X", "M", day, window=(0, 0), estimation_days=30)
    assert es.model.n == 30 and abs(es.event["t"]) < 4


def test_event_study_errors():
    r, day = synthetic_returns()
    with pytest.raises(ValueError, match="runs outside the returns"):
        mk.event_study(r, "X", "M", day, window=(-1, 20))
    with pytest.raises(ValueError, match=r"estimation window of 10 returns.*at least 20"):
        mk.event_study(r, "X", "M", r.index[11], window=(-1, 1))
    with pytest.raises(ValueError, match="unknown column 'SPX'"):
        mk.event_study(r, "X", "SPX", day)
    with pytest.raises(ValueError, match="starts after it ends"):
        mk.event_study(r, "X", "M", day, window=(2, 1))


# --- drawdown and recovery ------------------------------------------------------------------


def test_drawdown_and_recovery():
    close = pd.Series(
        [100.0, 120.0, 90.0, 110.0, 125.0], index=pd.date_range("2025-01-01", periods=5)
    )
    assert np.allclose(mk.drawdown(close), [0, 0, -0.25, -1 / 12, 0])
    dd = mk.max_drawdown(close)
    assert (dd.peak, dd.trough, dd.depth) == (120.0, 90.0, -0.25)
    assert dd.recovery_date == close.index[4]
    assert mk.max_drawdown(close.iloc[:4]).recovery_date is None


def test_retracement():
    close = pd.Series([100.0, 80.0, 90.0, 101.0], index=pd.date_range("2025-01-01", periods=4))
    assert np.allclose(mk.retracement(close, "2025-01-02"), [0.0, 0.5, 1.05])
    with pytest.raises(ValueError, match="did not fall"):
        mk.retracement(close, "2025-01-03")


# --- checking claims ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "printed,data,qualifier,rel_tol,verdict",
    [
        ("118.42", 118.42, "=", 0, "right"),
        ("118.51", 118.42, "=", 0, "wrong"),
        ("-16.97", -16.968, "=", 0, "right"),
        ("-3.1", -3.0695, "=", 0, "right"),
        ("-9.2", -9.1485, "=", 0, "right"),  # rounded from -9.15, as agencies print it
        ("-9.142", -9.1485, "=", 0, "wrong"),
        ("589", 592.34, "=", 0.01, "close"),
        ("589", 592.34, "=", 0, "wrong"),
        ("600", 592.34, "nearly", 0, "right"),
        ("1000", 592.34, "nearly", 0, "wrong"),
        ("-10", -9.15, "below", 0, "wrong"),
        ("560", 592.34, "above", 0, "right"),
        ("Tuesday", "Monday", "=", 0, "wrong"),
    ],
)
def test_check_claim(printed, data, qualifier, rel_tol, verdict):
    assert mk.check_claim(printed, data, qualifier, rel_tol) == verdict


def test_check_claim_rejects_unknown_qualifier():
    with pytest.raises(ValueError, match="unknown qualifier 'roughly'"):
        mk.check_claim("1", 1.0, "roughly")


def test_sources_describe_the_market_files():
    sources = data_text("SOURCES.md")
    for name in (mk.PRICES_FILE, mk.SHARES_FILE, mk.SESSIONS_FILE):
        assert f"## {name}" in sources


def test_the_first_day_has_no_return_and_nothing_to_retrace():
    c = mk.closes(mk.load_prices(), ["NVDA"])
    for call in (
        lambda: mk.day_returns(c, "2024-12-02"),
        lambda: mk.retracement(c["NVDA"], "2024-12-02"),
    ):
        with pytest.raises(ValueError, match="2024-12-02 is the first day of the data"):
            call()
