"""The repository's tools (tools/*.py): they run from a checkout, never from the package."""

import ast
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import refresh_prices

from effllm import markets as mk

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "effllm"


def test_the_installed_package_knows_nothing_of_the_repository():
    """No module of the package reads notebooks, climbs to parent folders or imports a tool."""
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        assert "ipynb" not in text and "notebook" not in text.lower(), path.name
        assert ".parents[" not in text and '"..' not in text, path.name
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not imported & {"fork", "bench", "benchmarks", "refresh_prices"}, path.name


def test_deepseek_v3s_hidden_size_is_written_once():
    hidden = str(7000 + 168)  # spelt out here, this file would be a second place
    sources = [*PACKAGE.rglob("*.py"), *ROOT.glob("t*s/**/*.py"), *(ROOT / "labs").glob("*.ipynb")]
    places = [p.name for p in sources if hidden in p.read_text().replace("_", "")]
    assert places == ["deepseek_v3.py"]


def test_refresh_without_yfinance_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "yfinance", None)  # makes `import yfinance` fail
    with pytest.raises(ImportError, match=r"pip install yfinance"):
        refresh_prices.refresh(tmp_path / "p.csv")


def test_a_download_is_written_in_the_shipped_format(tmp_path):
    symbols = {t: refresh_prices.YAHOO_SYMBOLS.get(t, t) for t in mk.NAMES}
    dates = pd.to_datetime(["2025-01-24", "2025-01-27"])
    cols = pd.MultiIndex.from_product([["Close", "Volume"], list(symbols.values())])
    raw = pd.DataFrame(1.0, index=dates, columns=cols)
    raw[("Close", "NVDA")] = [142.6199951171875, 118.41999816894531]
    raw[("Volume", "NVDA")] = [234657600, 818830900]
    path = tmp_path / "p.csv"
    refresh_prices.tidy_download(raw, symbols).to_csv(path, index=False, float_format="%.2f")
    assert path.read_text().splitlines()[:2] == [
        "date,ticker,close,volume",
        "2025-01-24,NVDA,142.62,234657600",
    ]
    p = mk.load_prices(path)
    assert len(p) == 2 * len(mk.NAMES)
    assert mk.day_returns(mk.closes(p, "NVDA"), "2025-01-27").round(4)["NVDA"] == -0.1697
    raw[("Close", "^SOX")] = [1.0, np.nan]
    with pytest.raises(ValueError, match="no close for SOX on 2025-01-27"):
        refresh_prices.tidy_download(raw, symbols)


def test_refresh_command_reports_a_missing_yfinance(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "yfinance", None)
    assert refresh_prices.main(["--out", str(tmp_path / "p.csv")]) == 2
    assert "pip install yfinance" in capsys.readouterr().err
