"""Checks that tell a student whether a function they wrote is right, and what is wrong if not.

A lab writes what it teaches as small functions in the page (cells tagged ``solution``), and the
next cell (tagged ``check``) hands each one to a check of the lab's check module::

    route = check_moe.route(route)

The check calls the function on random and edge-case inputs and compares it with the course's
implementation. Then:

- **right**: it prints a tick and returns the student's function, which the lab goes on using;
- **wrong**: it raises :class:`CheckFailedError` with a message in the student's terms. Each check
  knows the common mistakes as small wrong implementations (``Mistake``); when the student's
  results match one of them, the message names that mistake;
- **not written yet** (its body still calls :func:`todo`, as in the exercise edition): it says
  so and returns the course's implementation, so the rest of the lab runs on that.

For grading, ``EFFLLM_GRADING=results.jsonl`` makes every check append its outcome to that file,
and a failed check then returns the course's implementation instead of raising, so that one
mistake does not hide the checks after it (see the repository's ``tools/grade.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import torch

GRADING_ENV = "EFFLLM_GRADING"


class NotWrittenError(NotImplementedError):
    """Raised by a function whose body is still the exercise edition's placeholder."""


class CheckFailedError(AssertionError):
    """A student's function gave a wrong result; the message says what is wrong."""


def todo(name: str) -> NoReturn:
    """The body of a function the student has not written yet."""
    raise NotWrittenError(
        f"write {name}() here: replace this line with your code (the docstring and the equation "
        "above say what it must return), then run the check cell below it"
    )


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong implementation, and what to tell a student whose function matches it."""

    function: Callable[..., Any]
    message: str


@dataclass(frozen=True)
class Case:
    """One input of a check: positional arguments, and a label for messages."""

    args: tuple
    label: str = ""


def log_uniform(n: int, seed: int, low: float, high: float) -> list[float]:
    """``n`` seeded positive numbers spread evenly in log scale between ``low`` and ``high``:
    test inputs for formulas whose arguments span orders of magnitude."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in np.exp(rng.uniform(np.log(low), np.log(high), n))]


def close(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Equal to round-off: tensors, arrays, numbers, and tuples or lists of them."""
    if isinstance(a, tuple | list) or isinstance(b, tuple | list):
        if not isinstance(a, tuple | list) or not isinstance(b, tuple | list) or len(a) != len(b):
            return False
        return all(close(x, y, rtol, atol) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            return False
        if a.shape != b.shape:
            return False
        if a.dtype == torch.bool or b.dtype == torch.bool or not a.is_floating_point():
            return bool(torch.equal(a, b.to(a.dtype)))
        return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True))
    try:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        return a == b
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))


def _difference(got: Any, want: Any) -> str:
    """How a result differs from the expected one, in a few words."""
    if isinstance(want, tuple | list) and isinstance(got, tuple | list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if not close(g, w):
                return f"part {i + 1} of {len(want)} of the result is wrong: {_difference(g, w)}"
    if isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor):
        if not want.is_floating_point():
            wrong = int((got.to(want.dtype) != want).sum())
            return f"{wrong} of its {want.numel()} entries differ from the expected ones"
        gap = (got.double() - want.double()).abs().max().item()
        return f"its values differ from the expected ones by up to {gap:.3g}"
    if isinstance(want, int | float) and isinstance(got, int | float):
        return f"it returns {got:.6g}, expected {want:.6g}"
    return f"it returns {got!r}, expected {want!r}"


def _record(name: str, status: str, detail: str = "") -> None:
    path = os.environ.get(GRADING_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"check": name, "status": status, "detail": detail}) + "\n")


def _call(fn: Callable, case: Case) -> Any:
    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case.args)
    return fn(*args)


def first_difference(
    student: Callable,
    reference: Callable,
    cases: Sequence[Case],
    compare: Callable[[Any, Any], bool] = close,
) -> str | None:
    """Why ``student`` differs from ``reference`` on the first case where it does, or None."""
    for case in cases:
        want = _call(reference, case)
        got = _call(student, case)
        if not compare(got, want):
            where = f" for {case.label}" if case.label else ""
            shapes = [tuple(v.shape) for v in (got, want) if isinstance(v, torch.Tensor)]
            if len(shapes) == 2 and shapes[0] != shapes[1]:
                return f"it returns shape {shapes[0]}{where}, expected {shapes[1]}"
            return f"for {case.label or 'one of the test inputs'} {_difference(got, want)}"
    return None


def verify(
    name: str,
    student: Callable,
    reference: Callable,
    cases: Iterable[Case],
    mistakes: Sequence[Mistake] = (),
    compare: Callable[[Any, Any], bool] = close,
    stand_in: str = "",
) -> Callable:
    """Check ``student`` against ``reference`` on ``cases``; see the module docstring.

    Returns the function the lab should go on with: the student's when it is right, the
    reference when it is not written yet (or, under grading, wrong). ``stand_in`` names the
    course function that stands in, for the message.
    """
    cases = list(cases)
    stand_in = stand_in or getattr(reference, "__qualname__", "the course's implementation")
    try:
        problem = first_difference(student, reference, cases, compare)
    except NotWrittenError:
        print(f"… {name}() is not written yet: the lab goes on with the course's {stand_in}")
        _record(name, "not attempted")
        return reference
    except CheckFailedError:
        raise
    except Exception as err:  # the student's code raised: say where, in their terms
        problem = f"it raised {type(err).__name__}: {err}"
    if problem is None:
        print(f"✓ {name}() agrees with the course's {stand_in} on {len(cases)} test inputs")
        _record(name, "pass")
        return student
    for mistake in mistakes:
        try:
            if first_difference(student, mistake.function, cases, compare) is None:
                problem = mistake.message
                break
        except Exception:  # a mistake that cannot even run on a case is no match
            continue
    message = f"{name}() is not right yet: {problem}"
    _record(name, "fail", message)
    if os.environ.get(GRADING_ENV):
        print(f"✗ {message} (graded as failed; the lab goes on with the course's {stand_in})")
        return reference
    raise CheckFailedError(message)
