import math
import re
from dataclasses import astuple

import pandas as pd
import pytest

from effllm import pricing
from effllm.datafiles import data_text
from effllm.pricing import TokenPrices

# A row of the price timeline in book/economics.md: "| 26 Dec 2024 | ... \$0.14 / \$0.28 ... |"
TIMELINE_ROW = re.compile(r"\| (\d{1,2} [A-Z][a-z]{2} \d{4}) \| ([^|]*) \|")


def _timeline(repo_text) -> dict[pd.Timestamp, set[float]]:
    """The book's dated price changes: date -> the dollar figures its row prints."""
    rows = TIMELINE_ROW.findall(repo_text("book/economics.md"))
    return {
        pd.Timestamp(day): {float(x) for x in re.findall(r"\\\$(\d+(?:\.\d+)?)", text)}
        for day, text in rows
    }


def test_shipped_prices_are_those_the_book_prints_with_their_sources(repo_text):
    # The chapter's timeline cites DeepSeek's pricing pages, the llm-prices tracker and OpenAI's
    # pages; every row of the data that starts on one of its dates must carry its figures.
    timeline = _timeline(repo_text)
    assert len(timeline) == 7
    table = pricing.api_prices()
    dated = table[table["valid_from"].isin(timeline.keys())]
    assert len(dated) == 9
    for row in dated.itertuples():
        printed = timeline[row.valid_from]
        assert {row.input_usd_per_m, row.output_usd_per_m} <= printed, (row.model, row.tier)
    # The 31 January row also prints the prices that day left alone or replaced.
    jan31 = timeline[pd.Timestamp("2025-01-31")]
    for old in (pricing.prices_for("o1"), pricing.prices_for("o1-mini", on="2025-01-30")):
        assert {old.input, old.output} <= jan31
    assert pricing.prices_for("DeepSeek-R1").cached_input in timeline[pd.Timestamp("2025-01-20")]


def test_prices_agree_with_the_notes_beside_them():
    table = pricing.api_prices()

    def one(model, tier, on="2025-03-01"):
        return pricing.prices_for(model, tier, on=on)

    # "half the standard V3 price"
    v3, v3_night = one("DeepSeek-V3", "standard"), one("DeepSeek-V3", "off-peak")
    assert v3_night == TokenPrices(v3.input / 2, v3.output / 2, v3.cached_input / 2)
    # "the same price as V3 off-peak, about 75% off the standard R1 price"
    r1, r1_night = one("DeepSeek-R1", "standard"), one("DeepSeek-R1", "off-peak")
    assert r1_night == v3_night
    for night, day in zip(astuple(r1_night), astuple(r1), strict=True):
        assert night / day == pytest.approx(0.25, abs=0.01)
    # o1-mini was "cut to match o3-mini, released the same day"
    assert one("o1-mini", "standard") == one("o3-mini", "standard")
    # GPT-4: "An early litellm fork lists input at 3 per million: a typo for 30"
    gpt4 = table[table["model"] == "GPT-4"].iloc[0]
    assert gpt4["input_usd_per_m"] == float(re.search(r"a typo for (\d+)", gpt4["note"])[1])
    # DeepSeek's yuan prices in the notes: the dollar prices are them at 7.0 to 7.5 CNY per USD.
    checked = 0
    for row in table[table["note"].str.contains("CNY", na=False)].itertuples():
        cny = re.search(r"CNY ([\d.]+) input / ([\d.]+) output / ([\d.]+) cache hit", row.note)
        usd = (row.input_usd_per_m, row.output_usd_per_m, row.cached_input_usd_per_m)
        for yuan, dollars in zip(map(float, cny.groups()), usd, strict=True):
            if pd.notna(dollars):
                assert 7.0 <= yuan / dollars <= 7.5, (row.model, row.tier, yuan, dollars)
                checked += 1
    assert checked == 8


def test_price_periods_are_ordered_and_chain():
    table = pricing.api_prices()
    ends = table.dropna(subset=["valid_to"])
    assert (ends["valid_from"] < ends["valid_to"]).all()
    for (model, _), rows in table.groupby(["model", "tier"]):
        rows = rows.sort_values("valid_from")
        # a model's periods in one tier follow each other without overlap or gap
        assert rows["valid_to"].iloc[:-1].tolist() == rows["valid_from"].iloc[1:].tolist(), model
    # DeepSeek's changes take effect at 16:00 UTC on the day given (SOURCES.md)
    for row in ends[ends["provider"] == "DeepSeek"].itertuples():
        assert f"{row.valid_to:%Y-%m-%d} 16:00 UTC" in row.date_basis, (row.model, row.tier)
    # V3's promotion ended when its standard price began; V3.1's one price replaced all of them
    v3 = table[table["model"] == "DeepSeek-V3"].set_index("tier")
    assert v3.loc["promotional", "valid_to"] == v3.loc["standard", "valid_from"]
    replaced = ends[
        ends["model"].isin(["DeepSeek-V3", "DeepSeek-R1"]) & (ends["tier"] != "promotional")
    ]
    v31 = table[table["model"] == "DeepSeek-V3.1"]
    assert len(replaced) == 4 and set(replaced["valid_to"]) == set(v31["valid_from"])


def test_prices_are_in_usd_per_million_tokens():
    table = pricing.api_prices()
    # A cache hit costs less than a miss, and output more than input, for every schedule; USD per
    # million tokens puts every list price between a cent and a few hundred dollars.
    cached = table.dropna(subset=["cached_input_usd_per_m"])
    assert (cached["cached_input_usd_per_m"] < cached["input_usd_per_m"]).all()
    assert (table["input_usd_per_m"] < table["output_usd_per_m"]).all()
    prices = table[["input_usd_per_m", "output_usd_per_m"]].to_numpy()
    assert ((prices >= 0.01) & (prices <= 200)).all()


def test_every_price_row_names_a_source_and_its_dates():
    table = pricing.api_prices()
    assert (table["source"].str.len() > 10).all()
    undated = table[table["valid_from"].isna()]
    assert undated["date_basis"].str.contains("UNVERIFIED|not in the reference").all()


def test_the_unverified_promotional_cached_price_is_left_out():
    assert pricing.prices_for("DeepSeek-V3", "promotional").cached_input is None


def test_prices_for_picks_the_period_in_force():
    assert pricing.prices_for("o1-mini", on="2025-01-30") == TokenPrices(3.0, 12.0, None)
    assert pricing.prices_for("o1-mini", on="2025-01-31") == TokenPrices(1.10, 4.40, 0.55)
    assert pricing.prices_for("DeepSeek-V3", on="2025-02-09").input == 0.27
    with pytest.raises(ValueError, match="several prices"):
        pricing.prices_for("o1-mini")
    with pytest.raises(ValueError, match="no standard price for 'DeepSeek-R1' in force"):
        pricing.prices_for("DeepSeek-R1", on="2025-01-01")
    with pytest.raises(ValueError, match="no price for model 'GPT-5'"):
        pricing.prices_for("GPT-5")


def test_workload_cost_by_hand():
    r1 = TokenPrices(input=0.55, output=2.19, cached_input=0.14)
    # 3,000 input tokens and 2,500 output tokens: 3000*0.55 + 2500*2.19 = 7125 micro-dollars.
    assert pricing.workload_cost(r1, 3000, 2500) == pytest.approx(7125e-6)
    # Half the input from the cache: 1500*0.55 + 1500*0.14 + 2500*2.19 = 6510 micro-dollars.
    assert pricing.workload_cost(r1, 3000, 2500, cache_hit_fraction=0.5) == pytest.approx(6510e-6)
    assert pricing.workload_cost(r1, 0, 0) == 0


def test_r1_over_o1_ratio_lies_between_the_input_and_output_ratios():
    r1, o1 = pricing.prices_for("DeepSeek-R1"), pricing.prices_for("o1")
    lo, hi = sorted([o1.input / r1.input, o1.output / r1.output])
    for n_in, n_out in [(1, 0), (0, 1), (3000, 2500), (1000, 20000)]:
        ratio = pricing.workload_cost(o1, n_in, n_out) / pricing.workload_cost(r1, n_in, n_out)
        assert lo - 1e-12 <= ratio <= hi + 1e-12
    assert lo == pytest.approx(15 / 0.55) and hi == pytest.approx(60 / 2.19)


def test_blended_price():
    gpt4 = TokenPrices(30.0, 60.0)
    assert pricing.blended_price(gpt4) == pytest.approx((3 * 30 + 60) / 4)
    assert pricing.blended_price(gpt4, input_per_output=0) == 60


@pytest.mark.parametrize("bad", [-1, -0.01, math.nan, math.inf, "x", None])
def test_negative_or_non_numeric_token_counts_raise(bad):
    prices = TokenPrices(1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="input_tokens"):
        pricing.workload_cost(prices, bad, 10)
    with pytest.raises(ValueError, match="output_tokens"):
        pricing.workload_cost(prices, 10, bad)


def test_negative_prices_raise():
    with pytest.raises(ValueError, match="input price cannot be negative, got -0.55"):
        TokenPrices(input=-0.55, output=2.19)
    with pytest.raises(ValueError, match="output price"):
        TokenPrices(input=0.55, output=-2.19)
    with pytest.raises(ValueError, match="cached input price"):
        TokenPrices(input=0.55, output=2.19, cached_input=-0.14)


def test_bad_cache_fraction_or_missing_cached_price_raise():
    with pytest.raises(ValueError, match="cache_hit_fraction is a fraction"):
        pricing.workload_cost(TokenPrices(1, 2, 0.5), 10, 10, cache_hit_fraction=1.5)
    with pytest.raises(ValueError, match="no cached-input price"):
        pricing.workload_cost(TokenPrices(3.0, 15.0), 10, 10, cache_hit_fraction=0.5)


# --- constant-elasticity demand and the Jevons threshold -------------------------------------


def test_demand_and_spend_follow_the_formula():
    assert pricing.demand(2.0, 1.5, scale=10) == pytest.approx(10 * 2.0**-1.5)
    assert pricing.demand(5.0, 0.0) == 1.0  # perfectly inelastic: the quantity never moves


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.99, 1.0, 1.01, 1.5, 3.0])
def test_spend_multiplier_matches_spend_before_and_after(eps):
    before = 1.0 * pricing.demand(1.0, eps, scale=7)  # spending is price times quantity
    after = 0.1 * pricing.demand(0.1, eps, scale=7)
    assert pricing.spend_multiplier(0.1, eps) == pytest.approx(after / before)


def test_elasticity_threshold_is_one():
    # A tenfold price cut raises total spending if and only if demand is elastic (eps > 1).
    for eps in [1.0001, 1.2, 2.0, 5.0]:
        assert pricing.spend_rises_with_price_cut(eps)
        assert pricing.spend_multiplier(0.1, eps) > 1
    for eps in [0.0, 0.3, 0.9999]:
        assert not pricing.spend_rises_with_price_cut(eps)
        assert pricing.spend_multiplier(0.1, eps) < 1


def test_unit_elasticity_leaves_spending_exactly_unchanged():
    assert pricing.spend_rises_with_price_cut(1.0) is False
    assert pricing.spend_multiplier(0.1, 1.0) == 1.0
    assert pricing.spend_multiplier(1e-6, 1) == 1.0
    assert 0.1 * pricing.demand(0.1, 1.0, scale=3) == pytest.approx(pricing.demand(1, 1.0, 3))


def test_bad_demand_inputs_raise():
    with pytest.raises(ValueError, match="price must be positive"):
        pricing.demand(-1.0, 1.5)
    with pytest.raises(ValueError, match="price must be positive"):
        pricing.demand(0.0, 1.5)
    with pytest.raises(ValueError, match="elasticity cannot be negative"):
        pricing.spend_rises_with_price_cut(-0.5)
    with pytest.raises(ValueError, match="price_ratio"):
        pricing.spend_multiplier(-0.1, 1.5)


def test_mmlu_scores_agree_with_their_sources_and_the_book(repo_text):
    table = pricing.mmlu_scores()
    scores = table.set_index("model")["mmlu_pct"]
    # GPT-4's score is the chapter's bar, printed there and in SOURCES.md from the GPT-4 report.
    assert f"GPT-4 scored {scores['GPT-4']:.1f}% on the MMLU" in repo_text("book/economics.md")
    assert f"{scores['GPT-4']:.1f} for GPT-4, 5-shot" in " ".join(data_text("SOURCES.md").split())
    # "o1-mini scores just below GPT-4 on MMLU"
    assert 0 < scores["GPT-4"] - scores["o1-mini"] < 2
    # Where the source column names a second evaluator that "gives the same" figure, it is this.
    same = table["source"].str.extract(r"gives the same (\d+\.\d)")[0].dropna().astype(float)
    assert len(same) == 3 and (table.loc[same.index, "mmlu_pct"] == same).all()
    priced = set(pricing.api_prices()["model"])
    assert set(scores.index) <= priced, "every scored model must also have a price"
