import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effllm import markets as mk
from effllm.datafiles import DataFileError, data_text

ROOT = Path(__file__).resolve().parents[1]


def _facts() -> Path | None:
    """The course's reference facts: shared/reference/FACTS.md beside the clone (CI) or beside a
    folder of worktrees above it; None when the clone stands alone."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "reference" / "FACTS.md"
        if candidate.is_file():
            return candidate
    return None


FACTS = _facts()
needs_facts = pytest.mark.skipif(
    FACTS is None, reason="shared/reference/FACTS.md is not beside this clone"
)


def _section_g() -> dict[tuple[str, str], str]:
    """(date, column) -> figure as written in section G of FACTS.md (thousands commas removed)."""
    text = FACTS.read_text(encoding="utf-8").split("## G. Daily closing prices")[1]
    rows = [line for line in text.split("\n---")[0].splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for col, cell in zip(header[1:], cells[1:], strict=True):
            table[(cells[0], col)] = cell.replace(",", "")
    return table


# --- the shipped data -----------------------------------------------------------------------


@needs_facts
def test_prices_csv_matches_the_reference_exactly():
    ref = _section_g()
    shipped = pd.read_csv(
        ROOT / "src/effllm/data/prices.csv", dtype=str, keep_default_na=False
    ).set_index(["date", "ticker"])
    ref_closes = {k: v for k, v in ref.items() if k[1] != "NVDA volume"}
    assert len(ref_closes) == 81 * 14 == len(shipped)
    for (date, ticker), figure in ref_closes.items():
        assert shipped.loc[(date, ticker), "close"] == figure, (date, ticker)
        volume = ref[(date, "NVDA volume")] if ticker == "NVDA" else ""
        assert shipped.loc[(date, ticker), "volume"] == volume, (date, ticker)


@needs_facts
def test_share_count_and_session_ranges_match_the_reference():
    facts = FACTS.read_text(encoding="utf-8")
    assert "24,477 shares issued and outstanding as of January 26, 2025" in facts
    assert mk.shares_outstanding("NVDA", "2025-01-27")[0] == 24_477 * 10**6
    for date, numbers in [
        ("2025-01-24", "open 148.37, high 148.97, low 141.88"),
        ("2025-01-27", "open 124.80, high 128.40, low 116.70"),
    ]:
        row = re.search(rf"^\|[^\n]*{date}[^\n]*$", facts, re.M).group(0)
        assert numbers in row
        s = mk.load_sessions().loc[date]
        assert f"open {s['open']:.2f}, high {s['high']:.2f}, low {s['low']:.2f}" == numbers
        assert s["close"] == float(_section_g()[(date, "NVDA")])


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


# --- the optional refresh -------------------------------------------------------------------


def test_refresh_without_yfinance_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "yfinance", None)  # makes `import yfinance` fail
    with pytest.raises(ImportError, match=r"pip install 'effllm\[refresh\]'"):
        mk.refresh(tmp_path / "p.csv")


def test_a_download_is_written_in_the_shipped_format(tmp_path):
    symbols = {t: mk.YAHOO_SYMBOLS.get(t, t) for t in mk.NAMES}
    dates = pd.to_datetime(["2025-01-24", "2025-01-27"])
    cols = pd.MultiIndex.from_product([["Close", "Volume"], list(symbols.values())])
    raw = pd.DataFrame(1.0, index=dates, columns=cols)
    raw[("Close", "NVDA")] = [142.6199951171875, 118.41999816894531]
    raw[("Volume", "NVDA")] = [234657600, 818830900]
    path = tmp_path / "p.csv"
    mk.tidy_download(raw, symbols).to_csv(path, index=False, float_format="%.2f")
    assert path.read_text().splitlines()[:2] == [
        "date,ticker,close,volume",
        "2025-01-24,NVDA,142.62,234657600",
    ]
    p = mk.load_prices(path)
    assert len(p) == 2 * len(mk.NAMES)
    assert mk.day_returns(mk.closes(p, "NVDA"), "2025-01-27").round(4)["NVDA"] == -0.1697
    raw[("Close", "^SOX")] = [1.0, np.nan]
    with pytest.raises(ValueError, match="no close for SOX on 2025-01-27"):
        mk.tidy_download(raw, symbols)


def test_sources_describe_the_market_files():
    sources = data_text("SOURCES.md")
    for name in (mk.PRICES_FILE, mk.SHARES_FILE, mk.SESSIONS_FILE):
        assert f"## {name}" in sources


def test_refresh_command_reports_a_missing_yfinance(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "yfinance", None)
    assert mk.main(["refresh", "--out", str(tmp_path / "p.csv")]) == 2
    assert "pip install 'effllm[refresh]'" in capsys.readouterr().err
