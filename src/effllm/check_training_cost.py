"""Lab 1's checks: training FLOPs by 6·N·D, GPU hours to dollars, model FLOPs utilisation.

Each function takes the student's function, checks it against :mod:`effllm.economics` with
:func:`effllm.checks.verify`, and returns the function the lab goes on with.
"""

from __future__ import annotations

from collections.abc import Callable

from effllm import economics
from effllm.checks import Case, Mistake, log_uniform, verify

SECONDS_PER_HOUR = economics.SECONDS_PER_HOUR


def training_flops(student: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """C = 6 N D for N active parameters and D tokens."""
    N, D = log_uniform(5, 0, 1e6, 1e12), log_uniform(5, 1, 1e9, 2e13)
    cases = [Case((n, d), f"N={n:.3g}, D={d:.3g}") for n, d in zip(N, D, strict=True)]
    return verify(
        "training_flops",
        student,
        lambda n, d: economics.training_flops(n, d),
        [Case((37e9, 14.8e12), "V3's N and D"), *cases],
        [
            Mistake(
                lambda n, d: 2 * n * d,
                "2·N·D counts the forward pass only; training also "
                "runs the backward pass, about twice the forward's work: 6 FLOPs per "
                "parameter per token",
            ),
            Mistake(
                lambda n, d: 4 * n * d,
                "4·N·D is the backward pass alone; add the forward pass's 2·N·D",
            ),
            Mistake(lambda n, d: 6 * n + d, "the FLOPs multiply: 6 × N × D, not 6·N + D"),
        ],
        stand_in="economics.training_flops",
    )


def training_cost_usd(student: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """Dollars = GPU hours × price per GPU hour."""
    hours, prices = log_uniform(5, 2, 1e3, 1e7), log_uniform(5, 3, 0.5, 5.0)
    cases = [
        Case((h, p), f"{h:.3g} GPU hours at ${p:.2f}") for h, p in zip(hours, prices, strict=True)
    ]
    return verify(
        "training_cost_usd",
        student,
        economics.training_cost_usd,
        [Case((2_788_000.0, 2.0), "V3's 2,788K hours at $2"), *cases],
        [
            Mistake(
                lambda h, p: h / p,
                "it divides the hours by the price; a bill is hours times the price of one hour",
            ),
            Mistake(
                lambda h, p: h * p / 1e6,
                "it returns millions of dollars; return dollars "
                "(the lab divides by 1e6 itself when it prints)",
            ),
            Mistake(
                lambda h, p: h * SECONDS_PER_HOUR * p,
                "the price is per GPU *hour*: no conversion to seconds is needed",
            ),
        ],
        stand_in="economics.training_cost_usd",
    )


def model_flops_utilisation(
    student: Callable[[float, float, float], float],
) -> Callable[[float, float, float], float]:
    """MFU = FLOPs / (GPU hours × 3600 s × peak FLOP/s per GPU)."""
    flops, hours, peaks = (
        log_uniform(5, 4, 1e20, 1e25),
        log_uniform(5, 5, 1e4, 1e7),
        log_uniform(5, 6, 1e14, 2e15),
    )
    cases = [
        Case(t, f"C={t[0]:.3g}, {t[1]:.3g} GPU hours")
        for t in zip(flops, hours, peaks, strict=True)
    ]
    return verify(
        "model_flops_utilisation",
        student,
        economics.model_flops_utilisation,
        [Case((3.3e24, 2_664_000.0, 989e12), "V3's pre-training"), *cases],
        [
            Mistake(
                lambda c, h, p: c / (h * p),
                "the peak is in FLOP per *second* and the time in "
                "hours: multiply the GPU hours by 3,600",
            ),
            Mistake(
                lambda c, h, p: (h * SECONDS_PER_HOUR * p) / c,
                "the ratio is upside down: "
                "utilisation is the FLOPs done divided by the FLOPs the GPUs could have done",
            ),
            Mistake(
                lambda c, h, p: 100 * c / (h * SECONDS_PER_HOUR * p),
                "it returns a percentage; return a fraction between 0 and 1",
            ),
        ],
        stand_in="economics.model_flops_utilisation",
    )


def gpu_hours_for(
    student: Callable[[float, float, float], float],
) -> Callable[[float, float, float], float]:
    """Exercise: GPU hours = C / (peak FLOP/s per GPU × utilisation × 3600 s)."""
    flops, peaks = log_uniform(5, 7, 1e20, 1e25), log_uniform(5, 8, 1e14, 2e15)
    utils = [0.1, 0.25, 0.4, 0.55, 0.9]
    cases = [
        Case(t, f"C={t[0]:.3g} at utilisation {t[2]}")
        for t in zip(flops, peaks, utils, strict=True)
    ]
    return verify(
        "gpu_hours_for",
        student,
        economics.gpu_hours_for,
        [Case((3.3e24, 989e12, 0.35), "V3's compute at 35% of 989 TFLOP/s"), *cases],
        [
            Mistake(lambda c, p, u: c / (p * u), "that is GPU *seconds*: divide by 3,600 more"),
            Mistake(
                lambda c, p, u: c * u / (p * SECONDS_PER_HOUR),
                "a lower utilisation "
                "needs *more* hours: divide by the utilisation, do not multiply",
            ),
            Mistake(
                lambda c, p, u: c / (p * SECONDS_PER_HOUR),
                "the GPUs deliver only a fraction of their peak: divide by the utilisation too",
            ),
        ],
        stand_in="economics.gpu_hours_for",
    )
