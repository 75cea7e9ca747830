"""Download the shipped share-price table again, from Yahoo Finance, in the shipped format.

    pip install yfinance
    python tools/refresh_prices.py --out prices_refreshed.csv [--start 2024-12-02 --end 2025-03-31]

A maintainer's tool, run from a checkout: the course itself never touches the network. The file
it writes has the format of ``effllm/data/prices.csv``, so ``effllm.markets.load_prices(path)``
reads and checks it, and a diff against the shipped file shows what changed. See
``src/effllm/data/SOURCES.md`` for where the shipped closes come from.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from effllm.markets import NAMES, load_prices

# yfinance's symbols where they differ from ours: indices carry a caret, the S&P 500 is ^GSPC.
YAHOO_SYMBOLS: dict[str, str] = {"IXIC": "^IXIC", "SPX": "^GSPC", "SOX": "^SOX"}


def tidy_download(raw: pd.DataFrame, symbols: Mapping[str, str]) -> pd.DataFrame:
    """yfinance's download (columns ``(field, symbol)``) in the shipped tidy format.

    ``symbols`` maps our tickers to yfinance's. Closes are rounded to cents (or hundredths of an
    index point); volume is kept for NVDA only, as in the shipped file.
    """
    ours = {v: k for k, v in symbols.items()}
    close = raw["Close"].rename(columns=ours)[list(symbols)]
    missing = close.isna().stack()
    if missing.any():
        date, ticker = missing[missing].index[0]
        raise ValueError(f"the download has no close for {ticker} on {pd.Timestamp(date):%Y-%m-%d}")
    tidy = close.round(2).rename_axis(index="date", columns="ticker").stack().rename("close")
    tidy = tidy.reset_index()
    nvda_volume = raw["Volume"][symbols["NVDA"]].astype("int64")
    is_nvda = tidy["ticker"] == "NVDA"
    tidy["volume"] = tidy["date"].map(nvda_volume).where(is_nvda).astype("Int64")
    tidy["date"] = pd.to_datetime(tidy["date"]).dt.strftime("%Y-%m-%d")
    return tidy


def refresh(out: str | os.PathLike, start: str = "2024-12-02", end: str = "2025-03-31") -> Path:
    """Download the closes for ``start``..``end`` with yfinance and write them to ``out``.

    The file has the shipped format, so ``load_prices(out)`` reads and checks it. Needs
    ``pip install yfinance`` and a network connection.
    """
    try:
        import yfinance as yf
    except ImportError:
        raise ImportError(
            "refreshing the prices needs yfinance: pip install yfinance "
            "(the shipped data need nothing)"
        ) from None
    symbols = {t: YAHOO_SYMBOLS.get(t, t) for t in NAMES}
    # yfinance's end date is exclusive: ask for the day after the last one wanted.
    last = (pd.Timestamp(end) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    raw = yf.download(
        list(symbols.values()), start=start, end=last, auto_adjust=False, progress=False
    )
    path = Path(out)
    tidy_download(raw, symbols).to_csv(path, index=False, float_format="%.2f")
    load_prices(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/refresh_prices.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default="prices_refreshed.csv", help="file to write")
    parser.add_argument("--start", default="2024-12-02", help="first trading day")
    parser.add_argument("--end", default="2025-03-31", help="last trading day")
    args = parser.parse_args(argv)
    try:
        path = refresh(args.out, args.start, args.end)
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}; read it with effllm.markets.load_prices({str(path)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
