"""Run the course's speed benchmarks from a checkout: ``python tools/bench.py NAME`` or ``all``.

Benchmarks live in ``tools/benchmarks/NAME.py``; each defines ``run() -> str``. They measure
with wall-clock timers over repeated runs, never inside the test suite. ``make bench`` runs all.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks  # tools/benchmarks, next to this script
import torch


def available() -> list[str]:
    """Names of the benchmark modules."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__))


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*names, "all"], help="which benchmark to run")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in names if args.name == "all" else [args.name]:
        print(f"== {name}")
        print(importlib.import_module(f"benchmarks.{name}").run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
