import math

import numpy as np
import pytest

from effllm import validate


def test_numbers_come_back_as_floats():
    assert validate.finite("x", -3) == -3.0 and isinstance(validate.finite("x", -3), float)
    assert validate.positive("x", np.float32(2.5)) == 2.5
    assert validate.non_negative("x", 0) == 0.0
    assert validate.fraction("x", 0) == 0.0 and validate.fraction("x", 1) == 1.0
    assert validate.positive_fraction("x", 1) == 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "x", None, [1.0]])
def test_non_numbers_and_non_finite_values_are_named(bad):
    for check in (
        validate.finite,
        validate.positive,
        validate.non_negative,
        validate.fraction,
        validate.positive_fraction,
    ):
        with pytest.raises(ValueError, match=r"^gpu_hours must be (a number|finite), got "):
            check("gpu_hours", bad)


@pytest.mark.parametrize(
    ("check", "bad", "message"),
    [
        (validate.positive, 0, "seats must be positive and finite, got 0"),
        (validate.positive, -1.5, "seats must be positive and finite, got -1.5"),
        (validate.non_negative, -0.01, "seats cannot be negative, got -0.01"),
        (validate.fraction, -0.1, "seats cannot be negative, got -0.1"),
        (validate.fraction, 1.01, "seats is a fraction and must lie between 0 and 1, got 1.01"),
        (validate.positive_fraction, 0, "seats must be positive and finite, got 0"),
        (validate.positive_fraction, 1.5, "seats is a fraction and cannot exceed 1, got 1.5"),
        (validate.positive_int, 0, "seats must be a positive integer, got 0"),
        (validate.positive_int, None, "seats must be a positive integer, got None"),
        (validate.positive_int, 2.0, "seats must be a positive integer, got 2.0"),
        (validate.positive_int, True, "seats must be a positive integer, got True"),
        (validate.non_negative_int, -1, "seats must be a non-negative integer, got -1"),
        (validate.non_negative_int, "3", "seats must be a non-negative integer, got '3'"),
    ],
)
def test_each_check_names_the_argument_and_the_bad_value(check, bad, message):
    with pytest.raises(ValueError) as err:
        check("seats", bad)
    assert str(err.value) == message


def test_integers_come_back_as_ints():
    assert validate.positive_int("n_head", np.int64(8)) == 8
    assert type(validate.positive_int("n_head", np.int64(8))) is int
    assert validate.non_negative_int("seed", 0) == 0
