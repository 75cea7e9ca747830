"""The small data sets shipped inside the package (``effllm/data``), read with validation.

Every file has its provenance in ``effllm/data/SOURCES.md``. A missing or malformed file raises
:class:`DataFileError` naming the file and what is wrong, instead of a traceback deep in pandas.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pandas as pd

PACKAGE = "effllm.data"


class DataFileError(ValueError):
    """A packaged data file is missing or does not have the expected shape."""


def location(name: str | os.PathLike) -> str:
    """How error messages name a file: its path, or its place inside the package."""
    return os.fspath(name) if isinstance(name, os.PathLike) else f"effllm/data/{name}"


def data_text(name: str | os.PathLike) -> str:
    """The text of the packaged data file ``name`` (for example ``"prices.csv"``).

    A path object (``pathlib.Path``) instead names a file outside the package, such as a copy
    refreshed online; it gets the same checks.
    """
    if isinstance(name, os.PathLike):
        try:
            return Path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataFileError(f"data file {location(name)} does not exist") from None
    path = resources.files(PACKAGE) / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        available = sorted(
            p.name for p in resources.files(PACKAGE).iterdir() if p.name.endswith((".csv", ".md"))
        )
        raise DataFileError(
            f"data file effllm/data/{name} is missing from the installed package "
            f"(found: {', '.join(available) or 'none'}). Reinstall the course package "
            f"(make setup, or pip install -e .)."
        ) from None


def read_csv(
    name: str | os.PathLike,
    columns: Mapping[str, str],
) -> pd.DataFrame:
    """Read packaged CSV ``name`` and check it.

    Args:
        name: file name inside ``effllm/data``, or a ``Path`` to a file elsewhere.
        columns: required column -> kind, where kind is ``"str"``, ``"float"``, ``"int"`` or
            ``"date"`` (ISO ``YYYY-MM-DD``). Numeric columns may be empty only if their kind ends
            in ``"?"`` (``"float?"``); other columns are kept as read (strings).

    Returns:
        The table with each required column converted to its kind.

    Raises:
        DataFileError: if the file is missing, empty, lacks a column, or a value does not parse.
    """
    text = data_text(name)
    where = location(name)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataFileError(f"{where} is not a readable CSV file: {err}") from None
    if df.empty:
        raise DataFileError(f"{where} has a header but no rows")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFileError(
            f"{where} lacks column(s) {missing}; its columns are {list(df.columns)}"
        )
    for col, kind in columns.items():
        optional = kind.endswith("?")
        base = kind.rstrip("?")
        raw = df[col].str.strip()
        blank = raw == ""
        if blank.any() and not optional:
            row = int(blank.idxmax()) + 2  # +1 for the header, +1 for 1-based lines
            raise DataFileError(f"{where}, line {row}: column {col!r} is empty")
        if base == "str":
            df[col] = raw
            continue
        if base == "date":
            parsed = pd.to_datetime(raw.where(~blank), format="%Y-%m-%d", errors="coerce")
        elif base in ("float", "int"):
            parsed = pd.to_numeric(raw.where(~blank).str.replace(",", ""), errors="coerce")
        else:
            raise ValueError(f"unknown column kind {kind!r} for {col!r}")
        bad = parsed.isna() & ~blank
        if bad.any():
            row = int(bad.idxmax())
            raise DataFileError(
                f"{where}, line {row + 2}: column {col!r} has {raw[row]!r}, not a {base}"
            )
        if base == "int" and not optional:
            parsed = parsed.astype("int64")
        df[col] = parsed
    return df
