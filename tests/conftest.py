"""Shared fixtures for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The repository's tools (tools/*.py) run from a checkout, as the tests do: make them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))


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
