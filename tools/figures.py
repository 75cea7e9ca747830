"""Write the book's diagrams (effllm.diagrams) to book/images/<name>.svg, byte for byte the same on
every run, or check that the committed ones are up to date.

    python tools/figures.py            # write every SVG
    python tools/figures.py --check    # exit 1 naming each SVG that differs or is missing
    python tools/figures.py --png DIR  # also write PNGs to DIR, to look at them

The SVGs are committed so that the book builds without running this; a unit test runs --check.
Another matplotlib may write other bytes for the same figure, so the check compares bytes only
under the matplotlib version that drew the committed files, and says so otherwise.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from effllm.diagrams import FIGURES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "book" / "images"


def render(name: str) -> bytes:
    """The SVG of diagram ``name``, with no date and a fixed hash salt: the same code, the same
    bytes."""
    plt.rcParams["svg.hashsalt"] = "effllm"
    fig = FIGURES[name]()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def drawn_with(folder: Path = IMAGES) -> set[str]:
    """The matplotlib versions that drew the SVGs in ``folder`` (from their metadata)."""
    found = (re.search(rb"Matplotlib v([0-9][\w.]*)", p.read_bytes()) for p in folder.glob("*.svg"))
    return {m.group(1).decode() for m in found if m}


def stale(folder: Path = IMAGES) -> list[str]:
    """Names of the diagrams whose SVG in ``folder`` is missing or differs from a fresh render."""
    out = []
    for name in FIGURES:
        path = folder / f"{name}.svg"
        if not path.exists() or path.read_bytes() != render(name):
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed SVGs")
    parser.add_argument("--png", type=Path, help="also write PNGs to this folder")
    args = parser.parse_args(argv)
    if args.check:
        if drawn_with() != {matplotlib.__version__}:
            print(
                f"book/images was drawn with matplotlib {sorted(drawn_with())}, this is "
                f"{matplotlib.__version__}: redraw it with python tools/figures.py"
            )
            return 1
        bad = stale()
        for name in bad:
            print(f"book/images/{name}.svg is out of date: run python tools/figures.py")
        return 1 if bad else 0
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:
        (IMAGES / f"{name}.svg").write_bytes(render(name))
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            fig = FIGURES[name]()
            fig.savefig(args.png / f"{name}.png", dpi=110)
            plt.close(fig)
        print(f"wrote book/images/{name}.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
