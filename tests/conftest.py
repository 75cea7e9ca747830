"""Shared fixtures for the unit tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from effllm.checks import CheckFailedError
from effllm.model import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
# The repository's tools (tools/*.py) run from a checkout, as the tests do: make them importable.
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture
def tiny_config() -> ModelConfig:
    """The unit tests' model: 2 layers, d_model 32 (4 heads of 8), SwiGLU width 64, context 32.

    Small enough to build and run in milliseconds; a test that needs another shape changes a
    field with ``dataclasses.replace``.
    """
    return ModelConfig(max_len=32, n_layer=2, d_model=32, d_ff=64)


@pytest.fixture
def repo_text() -> Callable[[str], str]:
    """``repo_text("book/economics.md")``: a file of this repository, white space folded to single
    spaces, so that a test can look for a sentence however its lines are wrapped."""

    def read(path: str) -> str:
        return " ".join((ROOT / path).read_text(encoding="utf-8").split())

    return read


@pytest.fixture
def fake_data_package(tmp_path, monkeypatch):
    """Point ``effllm.datafiles`` at an empty package in tmp_path; return its folder.

    Tests write the files they need into it, or leave one out to check the error.
    """
    pkg = tmp_path / "fake_effllm_data"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("effllm.datafiles.PACKAGE", "fake_effllm_data")
    yield pkg
    sys.modules.pop("fake_effllm_data", None)


@pytest.fixture
def grades() -> Callable[..., None]:
    """``grades(check, right, mistakes, wrong, says)``: a lab's check returns the right function
    unchanged, rejects each ``(mistake, message)`` with that message, and rejects ``wrong``, a
    subtly altered answer, with a message that matches ``says``."""

    def grade(check, right, mistakes, wrong, says: str = "differ|expected") -> None:
        assert check(right) is right
        for mistake, message in mistakes:
            with pytest.raises(CheckFailedError, match=message):
                check(mistake)
        with pytest.raises(CheckFailedError, match=says):
            check(wrong)

    return grade


@pytest.fixture
def one_percent_off() -> Callable[[Callable], Callable]:
    """``one_percent_off(fn)``: ``fn`` with its result, or each number of a tuple result, times
    1.01; a right answer nudged by 1%, which every check must reject."""

    def times(x):
        return tuple(times(v) for v in x) if isinstance(x, tuple) else 1.01 * x

    return lambda fn: lambda *args: times(fn(*args))
