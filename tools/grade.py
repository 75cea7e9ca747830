"""Grade a folder of submitted exercise notebooks: which checks each student passed.

    python tools/grade.py SUBMISSIONS/ [--out grades.csv] [--timeout 900]

Each notebook runs in a fresh Jupyter kernel (its own process, in an empty temporary folder),
never in this process, with ``EFFLLM_GRADING`` set so that every check cell records its outcome
instead of stopping the notebook (:mod:`effllm.checks`). A check is ``pass``, ``fail`` or
``not attempted`` (the function still has the exercise edition's placeholder); ``not run`` means
the notebook stopped before it (a syntax error, a cell that raised, the time limit). The table
is printed, and written as CSV with one row per student and one column per check.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

GRADING_ENV = "EFFLLM_GRADING"  # effllm.checks.GRADING_ENV; this tool imports no course code
CHECK_CALL = re.compile(r"^\s*\w+\s*=\s*check_\w+\.(\w+)\(", re.M)
NOT_RUN = "not run"


def expected_checks(nb: nbformat.NotebookNode) -> list[str]:
    """The checks a notebook's ``check`` cells call, in order."""
    names: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "check" in cell.metadata.get("tags", []):
            names += [n for n in CHECK_CALL.findall(cell.source) if n not in names]
    return names


def grade_notebook(path: Path, timeout: int) -> tuple[dict[str, str], str]:
    """(check -> status, a note on how the run ended) for one submitted notebook."""
    nb = nbformat.read(path, as_version=4)
    results = dict.fromkeys(expected_checks(nb), NOT_RUN)
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "checks.jsonl"
        before = os.environ.get(GRADING_ENV)
        os.environ[GRADING_ENV] = str(log)  # the kernel inherits this process's environment
        try:
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                allow_errors=True,
                resources={"metadata": {"path": work}},
            )
            client.execute()
            errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
            note = f"{len(errors)} cell(s) raised" if errors else "ran to the end"
        except (CellTimeoutError, DeadKernelError, TimeoutError) as err:
            note = f"stopped: {type(err).__name__}"
        finally:
            if before is None:
                os.environ.pop(GRADING_ENV, None)
            else:
                os.environ[GRADING_ENV] = before
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                results[row["check"]] = row["status"]
    return results, note


def grade_folder(folder: Path, timeout: int = 900) -> tuple[list[str], list[dict[str, str]]]:
    """(the check columns, one row per notebook: student, each check's status, note)."""
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no .ipynb files in {folder}")
    rows, columns = [], []
    for path in notebooks:
        results, note = grade_notebook(path, timeout)
        columns += [c for c in results if c not in columns]
        rows.append({"student": path.stem, **results, "note": note})
    for row in rows:
        for c in columns:
            row.setdefault(c, NOT_RUN)
    return columns, rows


def table(columns: list[str], rows: list[dict[str, str]]) -> str:
    """A plain-text table: students down, checks across."""
    header = ["student", *columns, "passed", "note"]
    body = [
        [
            r["student"],
            *(r[c] for c in columns),
            f"{sum(r[c] == 'pass' for c in columns)}/{len(columns)}",
            r["note"],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [header, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    columns, rows = grade_folder(args.folder, args.timeout)
    print(table(columns, rows))
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student", *columns, "note"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
