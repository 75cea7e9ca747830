"""Lab 6's checks: a workload's bill with prompt caching, constant-elasticity demand, the spending
threshold, the compute cost of serving a token, and two build exercises.

Each function takes the student's function, checks it against :mod:`effllm.pricing` or
:mod:`effllm.economics` with :func:`effllm.checks.verify`, and returns the function the lab goes
on with. Prices are :class:`effllm.pricing.TokenPrices`, in USD per million tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from effllm import economics, pricing
from effllm.checks import Case, Mistake, log_uniform, verify
from effllm.pricing import TokenPrices

SECONDS_PER_HOUR = economics.SECONDS_PER_HOUR
M = pricing.TOKENS_PER_MILLION

R1 = TokenPrices(input=0.55, output=2.19, cached_input=0.14)  # DeepSeek-R1's list price
R1_OFF_PEAK = TokenPrices(input=0.135, output=0.55, cached_input=0.035)


def _uniforms(n: int, seed: int, low: float, high: float) -> list[float]:
    """n uniform numbers between low and high, seeded."""
    return [float(x) for x in np.random.default_rng(seed).uniform(low, high, n)]


def _schedules(n: int, seed: int) -> list[TokenPrices]:
    """n random price schedules: output dearer than input, cache hits cheaper than misses."""
    p_in = log_uniform(n, seed, 0.05, 30.0)
    out_per_in = _uniforms(n, seed + 1, 1.5, 8.0)
    cached_per_in = _uniforms(n, seed + 2, 0.1, 0.6)
    return [
        TokenPrices(input=p, output=p * o, cached_input=p * c)
        for p, o, c in zip(p_in, out_per_in, cached_per_in, strict=True)
    ]


def _bill(p: TokenPrices, n_in: float, n_out: float, h: float) -> float:
    """The right bill, written out, for building wrong ones from it."""
    return (n_in * ((1 - h) * p.input + h * p.cached_input) + n_out * p.output) / M


def workload_cost(
    student: Callable[[TokenPrices, float, float, float], float],
) -> Callable[[TokenPrices, float, float, float], float]:
    """USD = [n_in ((1 − h) p_in + h p_cached) + n_out p_out] / 10^6."""
    prices = _schedules(6, 0)
    n_in, n_out = log_uniform(6, 10, 100, 1e6), log_uniform(6, 11, 100, 1e6)
    hits = [0.0, *_uniforms(5, 12, 0.05, 0.95)]  # one case without cache hits
    cases = [
        Case((p, i, o, h), f"{i:,.0f} input and {o:,.0f} output tokens, {h:.0%} cache hits")
        for p, i, o, h in zip(prices, n_in, n_out, hits, strict=True)
    ]
    return verify(
        "workload_cost",
        student,
        pricing.workload_cost,
        [*cases, Case((R1, 3_000.0, 2_500.0, 0.5), "one request to R1, half the input cached")],
        [
            Mistake(
                lambda p, i, o, h: _bill(p, i, o, h) * M,
                "prices are in dollars per *million* tokens: divide the tokens times the price "
                "by 1,000,000",
            ),
            Mistake(
                lambda p, i, o, h: _bill(p, i, o, 0.0),
                "it bills every input token at the full input price; the cache-hit share h of "
                "them costs the cached-input price",
            ),
            Mistake(
                lambda p, i, o, h: _bill(p, i, o, 1 - h),
                "the cache-hit share is on the wrong side: a share h of the input tokens hits "
                "the cache (cached price), the other 1 − h misses it (full input price)",
            ),
            Mistake(
                lambda p, i, o, h: (
                    _bill(p, i, 0.0, h) + o * ((1 - h) * p.output + h * p.cached_input) / M
                ),
                "it gives output tokens the cache discount; only input tokens can hit the "
                "prompt cache, every output token costs the output price",
            ),
            Mistake(
                lambda p, i, o, h: _bill(p, i, 0.0, h) + o * (1 - h) * p.output / M,
                "it applies the cache-hit share to the output tokens too; the share h only "
                "splits the *input* tokens, every output token is billed",
            ),
        ],
        stand_in="pricing.workload_cost",
    )


def _quantity_ratio(r: float, eps: float) -> float:
    return pricing.demand(r, eps) / pricing.demand(1.0, eps)


def _price_ratios(seed: int) -> list[Case]:
    """(price ratio, elasticity) pairs: cuts and rises, elasticities on both sides of 1."""
    ratios = [0.1, 0.5, 2.0, *log_uniform(4, seed, 0.02, 0.9), *log_uniform(2, seed + 1, 1.2, 5.0)]
    eps = [0.5, 1.5, 2.0, *_uniforms(4, seed + 2, 0.1, 3.0), *_uniforms(2, seed + 3, 0.1, 3.0)]
    return [Case((r, e), f"price × {r:.3g}, ε = {e:.3g}") for r, e in zip(ratios, eps, strict=True)]


def quantity_ratio(student: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """Q_new / Q_old = r^(−ε) when the price is multiplied by r, on Q = A P^(−ε)."""
    return verify(
        "quantity_ratio",
        student,
        _quantity_ratio,
        _price_ratios(20),
        [
            Mistake(
                lambda r, e: r**e,
                "the sign of the exponent is flipped: demand *falls* as the price rises, "
                "Q = A P^(−ε), so the ratio is r^(−ε)",
            ),
            Mistake(
                lambda r, e: r ** (1 - e),
                "that is the change in *spending*, P × Q; the tokens bought change by r^(−ε)",
            ),
            Mistake(
                lambda r, e: 1 + e * (1 - r),
                "that is the straight-line approximation (ε times the percentage change), "
                "right only for small changes; on the constant-elasticity curve it is r^(−ε)",
            ),
        ],
        stand_in="pricing.demand (new / old)",
    )


def spend_multiplier(student: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """Spend_new / spend_old = r · r^(−ε) = r^(1−ε)."""
    return verify(
        "spend_multiplier",
        student,
        pricing.spend_multiplier,
        _price_ratios(30),
        [
            Mistake(
                lambda r, e: r**-e,
                "that is the change in the *tokens bought*; spending is price times quantity, "
                "so multiply by the price ratio: r × r^(−ε) = r^(1−ε)",
            ),
            Mistake(
                lambda r, e: r ** (e - 1),
                "the sign of the exponent is flipped: spending changes by r^(1−ε), so a cut "
                "(r < 1) lowers spending when ε < 1",
            ),
            Mistake(
                lambda r, e: r ** (1 + e),
                "the demand exponent has the wrong sign: Q changes by r^(−ε), not r^ε, so "
                "spending changes by r^(1−ε)",
            ),
        ],
        stand_in="pricing.spend_multiplier",
    )


def spend_rises_with_price_cut(student: Callable[[float], bool]) -> Callable[[float], bool]:
    """A price cut raises spending exactly when ε > 1 (elastic demand)."""
    eps = [0.0, 0.3, 0.99, 1.0, 1.01, 1.5, 3.0, *_uniforms(5, 40, 0.0, 3.0)]
    cases = [Case((e,), f"ε = {e:.3g}") for e in eps]
    return verify(
        "spend_rises_with_price_cut",
        student,
        pricing.spend_rises_with_price_cut,
        cases,
        [
            Mistake(
                lambda e: e > 0,
                "the threshold is ε = 1, not 0: any ε > 0 means more tokens are bought, but "
                "spending rises only if they rise by a larger factor than the price falls",
            ),
            Mistake(
                lambda e: e >= 1,
                "at ε = 1 exactly, spending is unchanged (r^(1−1) = 1): it rises only for ε > 1",
            ),
            Mistake(
                lambda e: e < 1,
                "the wrong way round: below ε = 1 (inelastic demand) a cut lowers spending; "
                "above it spending rises",
            ),
        ],
        stand_in="pricing.spend_rises_with_price_cut",
    )


def tokens_per_second_per_gpu(
    student: Callable[[float, float, float], float],
) -> Callable[[float, float, float], float]:
    """Tokens/s per GPU = peak FLOP/s × utilisation / (2 N_active)."""
    params = log_uniform(5, 50, 1e8, 1e12)
    peaks = log_uniform(5, 51, 1e14, 2e15)
    utilisation = _uniforms(5, 52, 0.02, 0.6)
    cases = [
        Case((n, p, u), f"N = {n:.3g}, peak {p:.3g} FLOP/s, utilisation {u:.0%}")
        for n, p, u in zip(params, peaks, utilisation, strict=True)
    ]
    return verify(
        "tokens_per_second_per_gpu",
        student,
        economics.tokens_per_second_per_gpu,
        [Case((37e9, 989e12, 0.1), "V3's 37B active parameters at 10% of 989 TFLOP/s"), *cases],
        [
            Mistake(
                lambda n, p, u: p * u / (6 * n),
                "6 FLOPs per parameter is training (forward and backward passes); generating "
                "a token is a forward pass only, 2 FLOPs per parameter",
            ),
            Mistake(
                lambda n, p, u: p * u / n,
                "each parameter costs a multiply *and* an add: 2 FLOPs per parameter per token",
            ),
            Mistake(
                lambda n, p, u: p / (2 * n),
                "it runs at the full peak; only the fraction given by the utilisation is "
                "delivered, so multiply by it",
            ),
            Mistake(
                lambda n, p, u: p / (2 * n * u),
                "it divides by the utilisation; a GPU delivering a fraction u of its peak makes "
                "u times as many tokens, so multiply",
            ),
        ],
        stand_in="economics.tokens_per_second_per_gpu",
    )


def serving_cost_per_million_tokens(
    student: Callable[[float, float], float],
) -> Callable[[float, float], float]:
    """USD per million tokens = price per GPU hour / (tokens/s × 3600) × 10^6."""
    tps = log_uniform(5, 60, 10.0, 1e5)
    usd = log_uniform(5, 61, 0.5, 5.0)
    cases = [
        Case((t, c), f"{t:,.0f} tokens/s at ${c:.2f}/GPU hour")
        for t, c in zip(tps, usd, strict=True)
    ]
    v3 = economics.tokens_per_second_per_gpu(37e9, 989e12, 0.1)
    return verify(
        "serving_cost_per_million_tokens",
        student,
        economics.serving_cost_per_million_tokens,
        [Case((v3, 2.0), "V3's tokens/s at 10% of 989 TFLOP/s, $2/GPU hour"), *cases],
        [
            Mistake(
                lambda t, c: c / t * M,
                "the price is per GPU *hour* and the throughput per *second*: a GPU makes "
                "tokens/s × 3,600 tokens an hour",
            ),
            Mistake(
                lambda t, c: c / (t * SECONDS_PER_HOUR),
                "that is the cost of one token; the price is per *million* tokens, so multiply "
                "by 1,000,000",
            ),
            Mistake(
                lambda t, c: t * SECONDS_PER_HOUR / c / M,
                "the ratio is upside down: dollars per token is the hour's price divided by the "
                "tokens made in that hour",
            ),
        ],
        stand_in="economics.serving_cost_per_million_tokens",
    )


# --- build exercises ---------------------------------------------------------------------------


def _elasticity_for(r: float, m: float) -> float:
    """The ε with spend_multiplier(r, ε) = m: from m = r^(1−ε), ε = 1 − ln m / ln r."""
    return 1 - math.log(m) / math.log(r)


def elasticity_for_spend_multiplier(
    student: Callable[[float, float], float],
) -> Callable[[float, float], float]:
    """ε = 1 − ln m / ln r, the elasticity at which a price ratio r multiplies spending by m."""
    ratios = [*log_uniform(4, 70, 0.02, 0.8), *log_uniform(2, 71, 1.3, 5.0)]
    spends = [*log_uniform(4, 72, 1.1, 10.0), *log_uniform(2, 73, 0.1, 0.9)]
    cases = [
        Case((r, m), f"price × {r:.3g}, spending × {m:.3g}")
        for r, m in zip(ratios, spends, strict=True)
    ]
    return verify(
        "elasticity_for_spend_multiplier",
        student,
        _elasticity_for,
        [Case((0.1, 2.0), "spending doubling after a tenfold cut"), *cases],
        [
            Mistake(
                lambda r, m: 1 + math.log(m) / math.log(r),
                "a sign is flipped: from m = r^(1−ε), ln m = (1 − ε) ln r, so ε = 1 − ln m / ln r",
            ),
            Mistake(
                lambda r, m: math.log(m) / math.log(r),
                "ln m / ln r is the exponent 1 − ε, not ε: subtract it from 1",
            ),
            Mistake(
                lambda r, m: -math.log(m) / math.log(r),
                "that solves r^(−ε) = m, the elasticity at which the *tokens bought* change by "
                "m; spending changes by r^(1−ε)",
            ),
            Mistake(
                lambda r, m: 1 + math.log10(m),
                "1 + log10(m) is right only for a tenfold cut (ln r = −ln 10); divide ln m by "
                "ln r for any price ratio",
            ),
        ],
        stand_in="inverse of pricing.spend_multiplier",
    )


def _off_peak_reference(
    peak: TokenPrices, off_peak: TokenPrices, s: float, n_in: float, n_out: float, h: float
) -> float:
    # A bill is linear in the prices: split the workload between the two price lists.
    return (1 - s) * pricing.workload_cost(peak, n_in, n_out, h) + s * pricing.workload_cost(
        off_peak, n_in, n_out, h
    )


def off_peak_workload_cost(
    student: Callable[[TokenPrices, TokenPrices, float, float, float, float], float],
) -> Callable[[TokenPrices, TokenPrices, float, float, float, float], float]:
    """USD = (1 − s) · bill at the peak prices + s · bill at the off-peak prices."""
    peaks = _schedules(5, 80)
    off_peaks = [  # off-peak is cheaper: scale each random schedule below its peak one
        TokenPrices(p.input * f, p.output * f, p.cached_input * f)
        for p, f in zip(peaks, _uniforms(5, 88, 0.2, 0.8), strict=True)
    ]
    shares = _uniforms(5, 89, 0.05, 0.95)
    n_in, n_out = log_uniform(5, 90, 100, 1e6), log_uniform(5, 91, 100, 1e6)
    hits = _uniforms(5, 92, 0.05, 0.95)
    cases = [
        Case((a, b, s, i, o, h), f"{s:.0%} off-peak, {i:,.0f} in, {o:,.0f} out, {h:.0%} hits")
        for a, b, s, i, o, h in zip(peaks, off_peaks, shares, n_in, n_out, hits, strict=True)
    ]
    return verify(
        "off_peak_workload_cost",
        student,
        _off_peak_reference,
        [Case((R1, R1_OFF_PEAK, 1 / 3, 3_000.0, 2_500.0, 0.5), "R1, a third off-peak"), *cases],
        [
            Mistake(
                lambda a, b, s, i, o, h: _bill(a, i, o, h) * s + _bill(b, i, o, h) * (1 - s),
                "the off-peak share is on the wrong side: a share s of the traffic pays the "
                "off-peak prices, the other 1 − s the peak prices",
            ),
            Mistake(
                lambda a, b, s, i, o, h: _bill(b, i, o, h),
                "it bills all the traffic at the off-peak prices; only a share s runs off-peak",
            ),
            Mistake(
                lambda a, b, s, i, o, h: (
                    _bill(a, i, 0.0, h) + o * ((1 - s) * a.output + s * b.output) / M
                ),
                "only the output tokens get the off-peak prices; the input tokens sent at night "
                "pay the off-peak input prices too",
            ),
            Mistake(
                lambda a, b, s, i, o, h: (1 - s) * _bill(a, i, o, h) + s * _bill(b, i, o, 0.0),
                "the off-peak traffic hits the prompt cache as often as the rest: bill its "
                "input with the same cache-hit share",
            ),
        ],
        stand_in="pricing.workload_cost, split between peak and off-peak prices",
    )
