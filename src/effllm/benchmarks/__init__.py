"""Speed benchmarks, one module per benchmark; ``python -m effllm.bench NAME`` runs one.

Each module defines ``run() -> str``: it times something at a lab's sizes on the current
machine and returns a short report (printed by the dispatcher).
"""

from __future__ import annotations

import json
from pathlib import Path

LABS = Path(__file__).resolve().parents[3] / "labs"


def lab_presets(lab: str | Path) -> dict:
    """The ``PRESETS`` of a lab (``"02_moe"``, or a notebook's path), read from its notebook.

    The one code cell that defines ``PRESETS = {`` is executed on its own (such a cell only
    imports config classes and builds dicts), so the lab, its unit tests and its benchmark share
    one definition of the sizes.
    """
    path = LABS / f"{lab}.ipynb" if isinstance(lab, str) else lab
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: benchmarks read a lab's presets, so run them from a checkout of "
            "the course"
        )
    cells = [
        "".join(c["source"])
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "code" and "PRESETS = {" in "".join(c["source"])
    ]
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected one cell defining PRESETS, found {len(cells)}")
    namespace: dict = {}
    exec(cells[0], namespace)
    return namespace["PRESETS"]
