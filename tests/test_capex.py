import pytest

from effllm import capex

# Section D of the reference file of checked facts, USD bn, hard-coded so that a changed CSV
# fails: (company, fiscal year, kind, measure) -> (low, high, status).
FACTS_D = {
    ("Microsoft", 2023, "reported", "cash purchases"): (28.107, 28.107, "verified"),
    ("Microsoft", 2024, "reported", "cash purchases"): (44.477, 44.477, "verified"),
    ("Microsoft", 2025, "reported", "cash purchases"): (64.551, 64.551, "verified"),
    ("Microsoft", 2026, "reported", "cash purchases"): (115.948, 115.948, "verified"),
    ("Microsoft", 2025, "guidance", "AI data-centre spending"): (80, 80, "UNVERIFIED"),
    ("Alphabet", 2023, "reported", "cash purchases"): (32.251, 32.251, "verified"),
    ("Alphabet", 2024, "reported", "cash purchases"): (52.535, 52.535, "verified"),
    ("Alphabet", 2025, "reported", "cash purchases"): (91.447, 91.447, "verified"),
    ("Alphabet", 2026, "guidance", "capital expenditures"): (175, 185, "UNVERIFIED"),
    ("Amazon", 2023, "reported", "cash purchases"): (52.729, 52.729, "verified"),
    ("Amazon", 2024, "reported", "cash purchases"): (82.999, 82.999, "verified"),
    ("Amazon", 2025, "reported", "cash purchases"): (131.819, 131.819, "verified"),
    ("Amazon", 2023, "reported", "net cash purchases"): (48.133, 48.133, "verified"),
    ("Amazon", 2024, "reported", "net cash purchases"): (77.658, 77.658, "verified"),
    ("Amazon", 2025, "reported", "net cash purchases"): (128.320, 128.320, "verified"),
    ("Amazon", 2026, "guidance", "capital expenditures"): (200, 200, "UNVERIFIED"),
    ("Meta", 2023, "reported", "cash purchases"): (27.045, 27.045, "verified"),
    ("Meta", 2024, "reported", "cash purchases"): (37.256, 37.256, "verified"),
    ("Meta", 2025, "reported", "cash purchases"): (69.691, 69.691, "verified"),
    ("Meta", 2024, "reported", "Meta-defined capex"): (39.225, 39.225, "verified"),
    ("Meta", 2025, "reported", "Meta-defined capex"): (72.22, 72.22, "verified"),
    ("Meta", 2025, "guidance", "Meta-defined capex"): (60, 65, "verified"),
    ("Meta", 2026, "guidance", "Meta-defined capex"): (115, 135, "verified"),
}
# Guidance for 2025 that moved during the year (all secondary): (company, stated) -> (low, high).
FACTS_D_2025_GUIDANCE = {
    ("Alphabet", "2025-02"): (75, 75),
    ("Alphabet", "2025-07"): (85, 85),
    ("Alphabet", "2025-10"): (91, 93),
    ("Amazon", "2025-02"): (100, 100),
    ("Amazon", "2025-10"): (118, 125),
}


def test_shipped_capex_equals_the_reference():
    df = capex.capex()
    moving = (df["fiscal_year"] == 2025) & (df["kind"] == "guidance")
    moving &= df["company"].isin(["Alphabet", "Amazon"])
    shipped = {
        (r.company, r.fiscal_year, r.kind, r.measure): (r.low_usd_bn, r.high_usd_bn, r.status)
        for r in df[~moving].itertuples()
    }
    assert shipped == FACTS_D
    assert {
        (r.company, r.stated): (r.low_usd_bn, r.high_usd_bn) for r in df[moving].itertuples()
    } == FACTS_D_2025_GUIDANCE
    assert (df.loc[moving, "status"] == "UNVERIFIED").all()


def test_meta_defined_capex_adds_finance_lease_principal():
    df = capex.capex().set_index(["company", "fiscal_year", "measure"])
    own = df.loc[("Meta", 2024, "Meta-defined capex"), "low_usd_bn"]
    cash = df.loc[("Meta", 2024, "cash purchases"), "low_usd_bn"]
    assert own == pytest.approx(cash + 1.969)


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
