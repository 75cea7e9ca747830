import math

import pandas as pd
import pytest

from effllm import pricing
from effllm.pricing import TokenPrices

# Section C of the reference file of checked facts: (model, tier, valid_from) ->
# (input, cached input or None, output), USD per million tokens. Hard-coded here so that a
# changed CSV fails this test.
FACTS_C = {
    ("DeepSeek-V3", "promotional", "2024-12-26"): (0.14, None, 0.28),
    ("DeepSeek-V3", "standard", "2025-02-08"): (0.27, 0.07, 1.10),
    ("DeepSeek-V3", "off-peak", "2025-02-26"): (0.135, 0.035, 0.55),
    ("DeepSeek-R1", "standard", "2025-01-20"): (0.55, 0.14, 2.19),
    ("DeepSeek-R1", "off-peak", "2025-02-26"): (0.135, 0.035, 0.55),
    ("DeepSeek-V3.1", "standard", "2025-09-05"): (0.56, 0.07, 1.68),
    ("GPT-4", "standard", "2023-04-01"): (30.00, None, 60.00),
    ("GPT-4-32k", "standard", None): (60.00, None, 120.00),
    ("GPT-4o", "standard", "2024-08-06"): (2.50, 1.25, 10.00),
    ("GPT-4o mini", "standard", None): (0.15, 0.075, 0.60),
    ("o1", "standard", "2024-12-30"): (15.00, 7.50, 60.00),
    ("o1-mini", "standard", "2024-10-25"): (3.00, None, 12.00),
    ("o1-mini", "standard", "2025-01-31"): (1.10, 0.55, 4.40),
    ("o3-mini", "standard", "2025-01-31"): (1.10, 0.55, 4.40),
    ("Claude 3.5 Sonnet", "standard", None): (3.00, None, 15.00),
    ("Gemini 1.5 Flash", "standard", None): (0.075, None, 0.30),
    ("Gemini 1.5 Flash", "long-prompt", None): (0.15, None, 0.60),
    ("Gemini 2.0 Flash", "standard", "2025-02-25"): (0.10, None, 0.40),
    ("Gemini 2.0 Flash-Lite", "standard", None): (0.075, None, 0.30),
}
# Periods that end: (model, tier, valid_from) -> valid_to.
FACTS_C_ENDS = {
    ("DeepSeek-V3", "promotional", "2024-12-26"): "2025-02-08",
    ("DeepSeek-V3", "standard", "2025-02-08"): "2025-09-05",
    ("DeepSeek-V3", "off-peak", "2025-02-26"): "2025-09-05",
    ("DeepSeek-R1", "standard", "2025-01-20"): "2025-09-05",
    ("DeepSeek-R1", "off-peak", "2025-02-26"): "2025-09-05",
    ("o1-mini", "standard", "2024-10-25"): "2025-01-31",
}


def _key(row):
    start = None if pd.isna(row.valid_from) else row.valid_from.strftime("%Y-%m-%d")
    return (row.model, row.tier, start)


def test_shipped_prices_equal_the_reference():
    table = pricing.api_prices()
    shipped = {}
    for row in table.itertuples():
        cached = None if pd.isna(row.cached_input_usd_per_m) else row.cached_input_usd_per_m
        shipped[_key(row)] = (row.input_usd_per_m, cached, row.output_usd_per_m)
    assert shipped == FACTS_C
    ends = {
        _key(r): r.valid_to.strftime("%Y-%m-%d") for r in table.itertuples() if pd.notna(r.valid_to)
    }
    assert ends == FACTS_C_ENDS


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


def test_blend_equals_splitting_the_workload():
    peak = pricing.prices_for("DeepSeek-R1")
    night = pricing.prices_for("DeepSeek-R1", "off-peak")
    split = 0.75 * pricing.workload_cost(peak, 4000, 1000, 0.5) + 0.25 * pricing.workload_cost(
        night, 4000, 1000, 0.5
    )
    assert pricing.workload_cost(pricing.blend(peak, night, 0.25), 4000, 1000, 0.5) == (
        pytest.approx(split)
    )
    assert pricing.blend(peak, night, 0.0) == peak
    assert pricing.blend(peak, night, 1.0) == night


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
    with pytest.raises(ValueError, match="off_peak_share"):
        pricing.blend(TokenPrices(1, 2), TokenPrices(0.5, 1), -0.1)


# --- constant-elasticity demand and the Jevons threshold -------------------------------------


def test_demand_and_spend_follow_the_formula():
    assert pricing.demand(2.0, 1.5, scale=10) == pytest.approx(10 * 2.0**-1.5)
    assert pricing.total_spend(2.0, 1.5, scale=10) == pytest.approx(10 * 2.0**-0.5)
    assert pricing.demand(5.0, 0.0) == 1.0  # perfectly inelastic: the quantity never moves


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.99, 1.0, 1.01, 1.5, 3.0])
def test_spend_multiplier_matches_spend_before_and_after(eps):
    before = pricing.total_spend(1.0, eps, scale=7)
    after = pricing.total_spend(0.1, eps, scale=7)
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
    assert pricing.total_spend(0.1, 1.0, scale=3) == pytest.approx(pricing.total_spend(1, 1.0, 3))


def test_bad_demand_inputs_raise():
    with pytest.raises(ValueError, match="price must be positive"):
        pricing.demand(-1.0, 1.5)
    with pytest.raises(ValueError, match="price must be positive"):
        pricing.total_spend(0.0, 1.5)
    with pytest.raises(ValueError, match="elasticity cannot be negative"):
        pricing.spend_rises_with_price_cut(-0.5)
    with pytest.raises(ValueError, match="price_ratio"):
        pricing.spend_multiplier(-0.1, 1.5)


def test_mmlu_scores_match_their_sources():
    scores = pricing.mmlu_scores().set_index("model")["mmlu_pct"].to_dict()
    assert scores == {
        "GPT-4": 86.4,  # GPT-4 Technical Report, 5-shot
        "GPT-4o": 87.2,  # DeepSeek-R1 report, comparison table (and below)
        "Claude 3.5 Sonnet": 88.3,
        "DeepSeek-V3": 88.5,
        "DeepSeek-R1": 90.8,  # also in section H of the reference file
        "o1": 91.8,  # also in section H
        "o1-mini": 85.2,
        "o3-mini": 85.9,  # openai/simple-evals (and below)
        "GPT-4o mini": 82.0,
        "Gemini 1.5 Flash": 77.9,
    }
    priced = set(pricing.api_prices()["model"])
    assert set(scores) <= priced, "every scored model must also have a price"
