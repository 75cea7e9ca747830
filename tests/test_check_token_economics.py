"""Lab 6's checks (effllm.check_token_economics): the right formula passes, each known mistake is
rejected with its message, and a result off by 1% is rejected."""

import math

import pytest

from effllm import check_token_economics as lab6
from effllm import pricing


def bill(p, n_in, n_out, h=0.0):
    return (n_in * ((1 - h) * p.input + h * p.cached_input) + n_out * p.output) / 1e6


def night_bill(a, b, s, n_in, n_out, h):
    return (1 - s) * bill(a, n_in, n_out, h) + s * bill(b, n_in, n_out, h)


LAB6 = [
    (
        lab6.workload_cost,
        bill,
        [
            (lambda p, i, o, h: bill(p, i, o, h) * 1e6, "per \\*million\\* tokens"),
            (lambda p, i, o, h: bill(p, i, o, 0.0), "every input token at the full input price"),
            (lambda p, i, o, h: bill(p, i, o, 1 - h), "cache-hit share is on the wrong side"),
            (
                lambda p, i, o, h: (
                    bill(p, i, 0, h) + o * ((1 - h) * p.output + h * p.cached_input) / 1e6
                ),
                "gives output tokens the cache discount",
            ),
            (
                lambda p, i, o, h: bill(p, i, 0, h) + o * (1 - h) * p.output / 1e6,
                "cache-hit share to the output tokens too",
            ),
        ],
    ),
    (
        lab6.quantity_ratio,
        lambda r, e: r**-e,
        [
            (lambda r, e: r**e, "sign of the exponent is flipped"),
            (lambda r, e: r ** (1 - e), "change in \\*spending\\*"),
            (lambda r, e: 1 + e * (1 - r), "straight-line approximation"),
        ],
    ),
    (
        lab6.spend_multiplier,
        lambda r, e: r ** (1 - e),
        [
            (lambda r, e: r**-e, "change in the \\*tokens bought\\*"),
            (lambda r, e: r ** (e - 1), "sign of the exponent is flipped"),
            (lambda r, e: r ** (1 + e), "demand exponent has the wrong sign"),
        ],
    ),
    (
        lab6.spend_rises_with_price_cut,
        lambda e: e > 1,
        [
            (lambda e: e > 0, "threshold is ε = 1, not 0"),
            (lambda e: e >= 1, "at ε = 1 exactly, spending is unchanged"),
            (lambda e: e < 1, "wrong way round"),
        ],
    ),
    (
        lab6.tokens_per_second_per_gpu,
        lambda n, p, u: p * u / (2 * n),
        [
            (lambda n, p, u: p * u / (6 * n), "6 FLOPs per parameter is training"),
            (lambda n, p, u: p * u / n, "a multiply \\*and\\* an add"),
            (lambda n, p, u: p / (2 * n), "runs at the full peak"),
            (lambda n, p, u: p / (2 * n * u), "divides by the utilisation"),
        ],
    ),
    (
        lab6.serving_cost_per_million_tokens,
        lambda t, c: c / (t * 3600) * 1e6,
        [
            (lambda t, c: c / t * 1e6, "tokens/s × 3,600"),
            (lambda t, c: c / (t * 3600), "cost of one token"),
            (lambda t, c: t * 3600 / c / 1e6, "upside down"),
        ],
    ),
    (
        lab6.elasticity_for_spend_multiplier,
        lambda r, m: 1 - math.log(m) / math.log(r),
        [
            (lambda r, m: 1 + math.log(m) / math.log(r), "a sign is flipped"),
            (lambda r, m: math.log(m) / math.log(r), "exponent 1 − ε, not ε"),
            (lambda r, m: -math.log(m) / math.log(r), "solves r\\^\\(−ε\\) = m"),
            (lambda r, m: 1 + math.log10(m), "right only for a tenfold cut"),
        ],
    ),
    (
        lab6.off_peak_workload_cost,
        night_bill,
        [
            (lambda a, b, s, i, o, h: night_bill(b, a, s, i, o, h), "share is on the wrong side"),
            (lambda a, b, s, i, o, h: bill(b, i, o, h), "all the traffic at the off-peak"),
            (
                lambda a, b, s, i, o, h: (
                    bill(a, i, 0, h) + o * ((1 - s) * a.output + s * b.output) / 1e6
                ),
                "only the output tokens get the off-peak prices",
            ),
            (
                lambda a, b, s, i, o, h: (1 - s) * bill(a, i, o, h) + s * bill(b, i, o, 0.0),
                "same cache-hit share",
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("check", "right", "wrongs"), LAB6, ids=lambda x: getattr(x, "__name__", "")
)
def test_lab6_checks_accept_the_formula_and_name_each_mistake(
    check, right, wrongs, grades, one_percent_off
):
    if check is lab6.spend_rises_with_price_cut:  # a yes/no answer: flip it instead
        grades(check, right, wrongs, lambda e: not right(e), says="not right yet")
    else:
        grades(check, right, wrongs, one_percent_off(right))


def test_the_elasticity_reference_inverts_the_spend_multiplier():
    for r, m in [(0.1, 2.0), (0.5, 0.7), (3.0, 1.5)]:
        assert math.isclose(pricing.spend_multiplier(r, lab6._elasticity_for(r, m)), m)
    assert math.isclose(lab6._elasticity_for(0.1, 2.0), 1 + math.log10(2))


def test_the_off_peak_reference_equals_splitting_the_bill():
    want = night_bill(lab6.R1, lab6.R1_OFF_PEAK, 0.25, 3_000, 2_500, 0.5)
    got = lab6._off_peak_reference(lab6.R1, lab6.R1_OFF_PEAK, 0.25, 3_000, 2_500, 0.5)
    assert math.isclose(got, want)


def test_the_checks_price_r1_as_the_shipped_table_does():
    assert pricing.prices_for("DeepSeek-R1") == lab6.R1
    assert pricing.prices_for("DeepSeek-R1", "off-peak") == lab6.R1_OFF_PEAK
