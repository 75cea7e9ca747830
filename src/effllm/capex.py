"""Big-tech capital spending, as reported and as guided, and an illustrative revenue check.

The figures ship as ``effllm/data/capex.csv`` (see ``SOURCES.md``). Each row carries its own
definition, because the four companies do not measure the same thing: Microsoft's fiscal year
ends in June and its cash figure leaves out finance leases; Amazon reports gross and net
purchases; Meta guides on its own measure, which adds finance-lease principal.
"""

from __future__ import annotations

import pandas as pd

from effllm.datafiles import read_csv
from effllm.validate import positive

COMPANIES = ("Microsoft", "Alphabet", "Amazon", "Meta")
CAPEX_COLUMNS = {
    "company": "str",
    "fiscal_year": "int",
    "period": "str",
    "kind": "str",
    "measure": "str",
    "low_usd_bn": "float",
    "high_usd_bn": "float",
    "status": "str",
    "stated": "str",
    "definition": "str",
    "source": "str",
}
KINDS = ("reported", "guidance")
STATUSES = ("verified", "UNVERIFIED")


def capex() -> pd.DataFrame:
    """The shipped capex table with a ``mid_usd_bn`` column (the midpoint of a guidance range)."""
    df = read_csv("capex.csv", CAPEX_COLUMNS)
    for col, allowed in (("company", COMPANIES), ("kind", KINDS), ("status", STATUSES)):
        bad = sorted(set(df[col]) - set(allowed))
        if bad:
            raise ValueError(f"capex.csv: unexpected {col} {bad}; expected one of {allowed}")
    if (df["low_usd_bn"] > df["high_usd_bn"]).any() or (df["low_usd_bn"] <= 0).any():
        raise ValueError("capex.csv: every range needs 0 < low_usd_bn <= high_usd_bn")
    return df.assign(mid_usd_bn=(df["low_usd_bn"] + df["high_usd_bn"]) / 2)


def subscription_revenue_usd_bn(seats: float, usd_per_month: float) -> float:
    """Annual revenue, USD billions, of ``seats`` paying ``usd_per_month``.

    Illustrative only: an order-of-magnitude yardstick for capex, not a reported figure.
    """
    return positive("seats", seats) * positive("usd_per_month", usd_per_month) * 12 / 1e9


def seats_to_match(annual_usd_bn: float, usd_per_month: float) -> float:
    """Paying seats whose subscriptions would add up to ``annual_usd_bn`` a year (illustrative)."""
    return (
        positive("annual_usd_bn", annual_usd_bn)
        * 1e9
        / (positive("usd_per_month", usd_per_month) * 12)
    )
