"""Input checks shared by the whole package: each returns the value it checked, or raises a
ValueError that names the argument and shows the bad value.

    >>> positive("gpu_hours", 2_664_000)
    2664000.0
    >>> fraction("cache_hit_fraction", 1.5)
    Traceback (most recent call last):
    ValueError: cache_hit_fraction is a fraction and must lie between 0 and 1, got 1.5

The numeric checks accept anything ``float()`` accepts (ints, NumPy scalars) and return a float;
the integer checks accept Python and NumPy integers but not booleans, and return an int.
"""

from __future__ import annotations

import math
import numbers


def finite(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number (not NaN, not infinite)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def positive(name: str, value: float) -> float:
    """``value`` as a float if it is finite and > 0 (a GPU-hour count, a price, a share count)."""
    v = finite(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def non_negative(name: str, value: float) -> float:
    """``value`` as a float if it is finite and >= 0 (a token count or a price may be zero)."""
    v = finite(name, value)
    if v < 0:
        raise ValueError(f"{name} cannot be negative, got {value!r}")
    return v


def fraction(name: str, value: float) -> float:
    """``value`` as a float if it lies in [0, 1] (a share of tokens, a discount)."""
    v = non_negative(name, value)
    if v > 1:
        raise ValueError(f"{name} is a fraction and must lie between 0 and 1, got {value!r}")
    return v


def positive_fraction(name: str, value: float) -> float:
    """``value`` as a float if it lies in (0, 1] (a utilisation: some of peak, at most all)."""
    v = positive(name, value)
    if v > 1:
        raise ValueError(f"{name} is a fraction and cannot exceed 1, got {value!r}")
    return v


def _integer(name: str, value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def positive_int(name: str, value: int) -> int:
    """``value`` as an int if it is an integer >= 1 (a head count, a number of steps)."""
    v = _integer(name, value, "a positive integer")
    if v < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return v


def non_negative_int(name: str, value: int) -> int:
    """``value`` as an int if it is an integer >= 0 (a seed, a count that may be zero)."""
    v = _integer(name, value, "a non-negative integer")
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return v
