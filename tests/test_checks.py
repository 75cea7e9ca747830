"""The check machinery (effllm.checks) and Lab 1's checks: right code passes, wrong is named."""

import json

import pytest
import torch

from effllm import check_training_cost as lab1
from effllm.checks import (
    GRADING_ENV,
    Case,
    CheckFailedError,
    Mistake,
    NotWrittenError,
    close,
    todo,
    verify,
)


def square(x):
    return x * x


CASES = [Case((torch.tensor([1.0, -2.0, 3.0]),), "a small vector"), Case((2.5,), "a number")]


def test_close_compares_tensors_numbers_and_tuples():
    assert close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9]))
    assert not close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.02]))
    assert not close(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 2.0]]))
    assert not close(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert close((1.0, torch.tensor([3])), (1.0, torch.tensor([3])))
    assert not close((1.0, 2.0), (1.0,))
    assert not close(torch.tensor([1.0]), 1.0)


def test_a_right_function_passes_and_is_returned(capsys):
    mine = lambda x: x**2  # noqa: E731
    assert verify("square", mine, square, CASES) is mine
    assert "✓ square() agrees" in capsys.readouterr().out


def test_a_wrong_function_is_rejected_and_a_known_mistake_named():
    doubled = Mistake(lambda x: 2 * x, "you doubled x instead of squaring it")
    with pytest.raises(CheckFailedError, match="you doubled x"):
        verify("square", lambda x: x + x, square, CASES, [doubled])
    with pytest.raises(CheckFailedError, match=r"differ from the expected ones by up to 0\.0"):
        verify("square", lambda x: x * x * 1.01, square, CASES, [doubled])
    with pytest.raises(CheckFailedError, match="raised ZeroDivisionError"):
        verify("square", lambda x: x / 0 if isinstance(x, float) else x * x, square, CASES[::-1])
    with pytest.raises(CheckFailedError, match=r"returns shape \(1, 3\).*expected \(3,\)"):
        verify("square", lambda x: (x * x)[None], square, CASES)


def test_an_unwritten_function_stands_aside_for_the_reference(capsys):
    def mine(x):
        """x squared."""
        todo("mine")

    with pytest.raises(NotWrittenError, match=r"write mine\(\) here"):
        mine(2.0)
    assert verify("square", mine, square, CASES, stand_in="square") is square
    assert "square() is not written yet: the lab goes on with the course's square" in (
        capsys.readouterr().out
    )


def test_under_grading_outcomes_are_logged_and_a_failure_does_not_stop_the_lab(
    tmp_path, monkeypatch
):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv(GRADING_ENV, str(log))

    def unwritten(x):
        """x squared."""
        todo("unwritten")

    assert verify("right", square, square, CASES) is square
    assert verify("wrong", lambda x: x, square, CASES) is square
    assert verify("empty", unwritten, square, CASES) is square
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["check"], r["status"]) for r in rows] == [
        ("right", "pass"),
        ("wrong", "fail"),
        ("empty", "not attempted"),
    ]


# --- Lab 1 ---------------------------------------------------------------------------------

LAB1 = [
    (
        lab1.training_flops,
        lambda N, D: 6 * N * D,
        [
            (lambda N, D: 2 * N * D, "forward pass only"),
            (lambda N, D: 4 * N * D, "backward pass alone"),
            (lambda N, D: 6 * N + D, "multiply"),
        ],
    ),
    (
        lab1.training_cost_usd,
        lambda h, p: h * p,
        [
            (lambda h, p: h / p, "divides the hours by the price"),
            (lambda h, p: h * p / 1e6, "millions of dollars"),
            (lambda h, p: h * 3600 * p, "no conversion to seconds"),
        ],
    ),
    (
        lab1.model_flops_utilisation,
        lambda c, h, p: c / (h * 3600 * p),
        [
            (lambda c, h, p: c / (h * p), "multiply the GPU hours by 3,600"),
            (lambda c, h, p: h * 3600 * p / c, "upside down"),
            (lambda c, h, p: 100 * c / (h * 3600 * p), "percentage"),
            (lambda c, h, p: 1.01 * c / (h * 3600 * p), "differs|expected"),
        ],
    ),
]


@pytest.mark.parametrize(("check", "right", "wrongs"), LAB1)
def test_lab1_checks_accept_the_formula_and_name_each_mistake(check, right, wrongs):
    assert check(right) is right
    for wrong, message in wrongs:
        with pytest.raises(CheckFailedError, match=message):
            check(wrong)
    with pytest.raises(CheckFailedError):
        check(lambda *args: 1.01 * right(*args))


def test_a_wrong_part_of_a_tuple_is_named():
    pair = lambda x: (x, x * x)  # noqa: E731
    with pytest.raises(CheckFailedError, match="part 2 of 2 of the result is wrong"):
        verify("pair", lambda x: (x, x * x + 1), pair, CASES)
