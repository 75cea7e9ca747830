"""What tokens cost and how demand answers a price cut.

Prices are list prices in US dollars per million tokens, shipped as
``effllm/data/api_prices.csv`` (see ``SOURCES.md``). A bill has three parts: input tokens that
miss the provider's prompt cache, input tokens that hit it (cheaper), and output tokens, which
for a reasoning model include its chain of thought.

The demand side is the textbook constant-elasticity curve Q = A·P^(−ε), the simplest model in
which to ask Jevons's question: does a cheaper resource end up with more spent on it?
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from effllm.datafiles import read_csv
from effllm.validate import fraction, non_negative, positive

TOKENS_PER_MILLION = 1e6

PRICE_COLUMNS = {
    "model": "str",
    "api_name": "str",
    "provider": "str",
    "tier": "str",
    "input_usd_per_m": "float",
    "cached_input_usd_per_m": "float?",
    "output_usd_per_m": "float",
    "valid_from": "date?",
    "valid_to": "date?",
    "date_basis": "str",
    "note": "str?",
    "source": "str",
}


@dataclass(frozen=True)
class TokenPrices:
    """A price schedule in USD per million tokens; ``cached_input`` is None where unknown."""

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        # frozen: validate (and coerce to float) through object.__setattr__
        object.__setattr__(self, "input", non_negative("input price", self.input))
        object.__setattr__(self, "output", non_negative("output price", self.output))
        if self.cached_input is not None:
            cached = non_negative("cached input price", self.cached_input)
            object.__setattr__(self, "cached_input", cached)


def api_prices() -> pd.DataFrame:
    """The shipped price table, one row per model, tier and period (columns as in the CSV)."""
    df = read_csv("api_prices.csv", PRICE_COLUMNS)
    for col in ("input_usd_per_m", "cached_input_usd_per_m", "output_usd_per_m"):
        if (df[col] < 0).any():
            raise ValueError(f"api_prices.csv has a negative value in {col}")
    return df


def prices_for(
    model: str, tier: str = "standard", on: str | pd.Timestamp | None = None
) -> TokenPrices:
    """The list price of ``model`` in ``tier``, in force ``on`` a date if one is given.

    A period includes its ``valid_from`` day and excludes its ``valid_to`` day (DeepSeek's changes
    took effect in the afternoon, UTC, so a date on which a price changed is ambiguous; pass the
    day after to get the new one). Raises ValueError if no row, or more than one, matches.
    """
    table = api_prices()
    rows = table[(table["model"] == model) & (table["tier"] == tier)]
    if rows.empty:
        known = sorted(set(zip(table["model"], table["tier"], strict=True)))
        raise ValueError(f"no price for model {model!r}, tier {tier!r}; known: {known}")
    if on is not None:
        day = pd.Timestamp(on)
        starts = rows["valid_from"].isna() | (rows["valid_from"] <= day)
        ends = rows["valid_to"].isna() | (day < rows["valid_to"])
        rows = rows[starts & ends]
        if rows.empty:
            raise ValueError(f"no {tier} price for {model!r} in force on {day.date()}")
    if len(rows) > 1:
        periods = [f"{a} to {b}" for a, b in zip(rows["valid_from"], rows["valid_to"], strict=True)]
        raise ValueError(f"{model!r} ({tier}) had several prices ({periods}); pass on=<date>")
    row = rows.iloc[0]
    cached = row["cached_input_usd_per_m"]
    return TokenPrices(
        input=row["input_usd_per_m"],
        output=row["output_usd_per_m"],
        cached_input=None if pd.isna(cached) else cached,
    )


def workload_cost(
    prices: TokenPrices,
    input_tokens: float,
    output_tokens: float,
    cache_hit_fraction: float = 0.0,
) -> float:
    """USD for ``input_tokens`` read and ``output_tokens`` generated at ``prices``.

    ``cache_hit_fraction`` of the input tokens are billed at the cached-input price. Output tokens
    include any reasoning tokens: both DeepSeek and OpenAI bill a chain of thought as output.
    """
    n_in = non_negative("input_tokens", input_tokens)
    n_out = non_negative("output_tokens", output_tokens)
    hit = fraction("cache_hit_fraction", cache_hit_fraction)
    if hit > 0 and prices.cached_input is None:
        raise ValueError(
            f"cache_hit_fraction={hit} but this price schedule has no cached-input price"
        )
    cached_price = prices.cached_input or 0.0
    usd_per_m = n_in * ((1 - hit) * prices.input + hit * cached_price) + n_out * prices.output
    return usd_per_m / TOKENS_PER_MILLION


def blended_price(prices: TokenPrices, input_per_output: float = 3.0) -> float:
    """One USD-per-million figure for a schedule: the mean price of a token in a workload that
    reads ``input_per_output`` input tokens (cache misses) for every output token."""
    r = non_negative("input_per_output", input_per_output)
    return (r * prices.input + prices.output) / (r + 1)


def demand(price: float, elasticity: float, scale: float = 1.0) -> float:
    """Quantity demanded at ``price`` on a constant-elasticity curve, Q = scale · P^(−ε).

    ``elasticity`` ε >= 0 is the percentage fall in quantity for a 1% rise in price, the same at
    every price (that constancy is the model's strong assumption).
    """
    p = positive("price", price)
    eps = non_negative("elasticity", elasticity)
    return positive("scale", scale) * p**-eps


def spend_multiplier(price_ratio: float, elasticity: float) -> float:
    """Factor by which total spending changes when the price is multiplied by ``price_ratio``.

    On a constant-elasticity curve the scale cancels: new/old = price_ratio^(1−ε). A tenfold price
    cut is ``price_ratio=0.1``. At ε = 1 exactly the factor is exactly 1.
    """
    ratio = positive("price_ratio", price_ratio)
    return ratio ** (1 - non_negative("elasticity", elasticity))


def spend_rises_with_price_cut(elasticity: float) -> bool:
    """Whether a price cut raises total spending: exactly when demand is elastic, ε > 1.

    At ε = 1 spending is unchanged, below it spending falls: the cut saves buyers money even
    though they buy more.
    """
    return non_negative("elasticity", elasticity) > 1


def mmlu_scores() -> pd.DataFrame:
    """One MMLU score (percent) per model, with its evaluator and protocol (see SOURCES.md).

    Used only as a coarse filter ("at least as good as GPT-4 was in 2023 on this one test").
    """
    df = read_csv(
        "mmlu_scores.csv",
        {
            "model": "str",
            "evaluated_version": "str",
            "mmlu_pct": "float",
            "protocol": "str",
            "source": "str",
        },
    )
    if not df["mmlu_pct"].between(0, 100).all():
        raise ValueError("mmlu_scores.csv: a score lies outside 0..100")
    if df["model"].duplicated().any():
        raise ValueError("mmlu_scores.csv: one score per model expected")
    return df
