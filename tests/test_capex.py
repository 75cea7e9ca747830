import re

import pandas as pd
import pytest

from effllm import capex
from effllm.datafiles import data_text

REPORTED_KEY = ["company", "fiscal_year", "measure"]


def _reported() -> pd.Series:
    """Reported figures, USD bn, by (company, fiscal year, measure)."""
    df = capex.capex()
    return df[df["kind"] == "reported"].set_index(REPORTED_KEY)["low_usd_bn"]


def test_capex_figures_are_those_the_book_prints_with_their_sources(repo_text):
    # The money chapters print these figures, cited to the 10-K filings and Microsoft's blog.
    rep = _reported()
    guided = capex.capex().query("kind == 'guidance'").set_index(["company", "fiscal_year"])
    printed = repo_text("book/economics.md") + " " + repo_text("book/bill.md")
    msft_promise = guided.loc[("Microsoft", 2025), "low_usd_bn"]
    meta_low, meta_high = guided.loc[("Meta", 2025), ["low_usd_bn", "high_usd_bn"]]
    for figure in (
        f"{msft_promise:.0f}",
        f"{rep[('Microsoft', 2025, 'cash purchases')]:.1f}",
        f"{rep[('Amazon', 2025, 'cash purchases')]:.1f}",
        f"{rep[('Amazon', 2025, 'net cash purchases')]:.1f}",
        f"{meta_low:.0f}–{meta_high:.0f}",
        f"{rep[('Meta', 2025, 'Meta-defined capex')]:.1f}",
        f"{rep[('Meta', 2024, 'Meta-defined capex')]:.1f}",
    ):
        assert f"\\${figure} billion" in printed, figure
    # SOURCES.md states the same two Microsoft figures.
    sources = " ".join(data_text("SOURCES.md").split())
    assert f'"approximately ${msft_promise:.0f} billion" for FY2025' in sources
    assert f"the ${rep[('Microsoft', 2025, 'cash purchases')]:.1f} bn reported" in sources


def test_figures_quoted_in_the_rows_agree_with_their_columns():
    df = capex.capex()
    rep = _reported()
    # Meta's own measure: "purchases of property and equipment (37.256) plus principal payments
    # on finance leases (1.969)"
    meta = df.query("company == 'Meta' and fiscal_year == 2024 and measure == 'Meta-defined capex'")
    cash, leases = map(float, re.findall(r"\((\d+\.\d+)\)", meta["definition"].item()))
    assert cash == rep[("Meta", 2024, "cash purchases")]
    assert meta["low_usd_bn"].item() == pytest.approx(cash + leases)
    # Microsoft's guidance row: "the gap to the 64.551 reported"
    msft = df.query("company == 'Microsoft' and kind == 'guidance'")["definition"].item()
    gap_to = float(re.search(r"gap to the (\d+\.\d+) reported", msft)[1])
    assert gap_to == rep[("Microsoft", 2025, "cash purchases")]
    # Guidance rows that quote their figure ("raised to 91-93 bn", "'approximately 80 billion'")
    quoted = 0
    for row in df[df["kind"] == "guidance"].itertuples():
        m = re.search(r"(\d+)(?:-(\d+))? (?:bn|billion)", row.definition)
        if m:
            assert (row.low_usd_bn, row.high_usd_bn) == (float(m[1]), float(m[2] or m[1])), row
            quoted += 1
    assert quoted == 7


def test_capex_is_in_usd_billions_and_the_measures_nest():
    df = capex.capex()
    rep = _reported()
    # A reported figure is one number, in USD billions to the million (three decimals at most).
    reported = df[df["kind"] == "reported"]
    assert (reported["low_usd_bn"] == reported["high_usd_bn"]).all()
    assert reported["low_usd_bn"].between(10, 500).all()
    assert ((reported["low_usd_bn"] * 1000).round(6) % 1 == 0).all()
    # Amazon's net purchases are its gross purchases less proceeds: a little smaller.
    for year in (2023, 2024, 2025):
        gross = rep[("Amazon", year, "cash purchases")]
        net = rep[("Amazon", year, "net cash purchases")]
        assert 0.9 * gross < net < gross
    # Meta's own measure adds finance-lease principal to its cash purchases.
    for year in (2024, 2025):
        assert rep[("Meta", year, "Meta-defined capex")] > rep[("Meta", year, "cash purchases")]


def test_reported_figures_come_from_10ks_filed_after_the_year_and_cited_in_the_book(repo_text):
    df = capex.capex()
    bib = repo_text("book/references.bib")
    for row in df[df["kind"] == "reported"].itertuples():
        filed = pd.Timestamp(re.fullmatch(r"10-K filed (\d{4}-\d{2}-\d{2})", row.stated)[1])
        year_end = pd.Timestamp(
            f"{row.fiscal_year}-06-30" if row.company == "Microsoft" else f"{row.fiscal_year}-12-31"
        )
        # a 10-K's cash-flow statement covers its fiscal year and the two before it
        assert year_end < filed < year_end + pd.DateOffset(years=3), row
        assert row.period.startswith(
            "FY ended 30 June" if row.company == "Microsoft" else "calendar"
        )
        # the filing is in the bibliography, with its company and filing date
        when = f"{filed.day} {filed:%B %Y}"
        entry = rf"author = {{{{{row.company}[^}}]*}}}}[^@]*Filed with the U.S. SEC on {when}"
        assert re.search(entry, bib), (row.company, when)


def test_definitions_travel_with_the_data():
    df = capex.capex()
    msft = df[(df["company"] == "Microsoft") & (df["kind"] == "reported")]
    assert msft["definition"].str.contains("30 June").all()
    assert msft["definition"].str.contains("finance leases").all()
    amzn = df[(df["company"] == "Amazon") & (df["kind"] == "reported")]
    assert amzn["definition"].str.contains("gross|net").all()
    meta = df[df["company"] == "Meta"]
    assert meta["definition"].str.contains("finance-lease|finance leases").all()
    assert (df["source"].str.len() > 5).all()


def test_midpoint_of_a_range():
    df = capex.capex()
    row = df[(df["company"] == "Meta") & (df["fiscal_year"] == 2026)].iloc[0]
    assert row["mid_usd_bn"] == 125


def test_illustrative_revenue_check():
    # 100 million seats at $20 a month: 100e6 * 20 * 12 = $24 bn a year.
    assert capex.subscription_revenue_usd_bn(100e6, 20) == pytest.approx(24.0)
    assert capex.seats_to_match(24.0, 20) == pytest.approx(100e6)
    with pytest.raises(ValueError, match="seats"):
        capex.subscription_revenue_usd_bn(-5, 20)
    with pytest.raises(ValueError, match="usd_per_month"):
        capex.seats_to_match(100, 0)
