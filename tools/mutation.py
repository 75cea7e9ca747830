"""Mutation testing of the course's core modules with mutmut: ``make mutation``.

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) copies ``src/`` into ``mutants/``, makes
every small change it knows to the modules listed in ``only_mutate`` (``+``/``-``, ``<``/``<=``,
constants, keyword arguments, ...), and runs on each mutant only the unit tests that reach the
mutated function. A full run of the four modules takes hours on two cores, so this script runs
a seeded random sample of each module's mutants and prints one score per module:

    python tools/mutation.py                 # 60 mutants per module, seed 0
    python tools/mutation.py --sample 20 --modules markets
    python tools/mutation.py --sample 0      # every mutant (hours)

It runs from the repository root and needs mutmut (``pip install -e ".[dev]"``). Inspect a
surviving mutant with ``python -m mutmut show NAME``; CONTRIBUTING.md ("Mutation testing")
lists the survivors accepted as equivalent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

MODULES = ("attention", "moe", "grpo", "markets")
# A mutant that always exists, run first so that mutmut generates every mutant and collects
# which tests reach which function; its result is not counted.
BOOTSTRAP = "effllm.markets.x_drawdown__mutmut_1"
# mutmut's exit codes of a mutant's test run (mutmut.stats.status_by_exit_code).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout"}


def mutmut(*args: str) -> None:
    """Run ``python -m mutmut ARGS`` with one torch thread per worker; stop on failure."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "mutmut", *args], check=True, env=env)


def exit_codes(module: str) -> dict[str, int | None]:
    """mutmut's recorded exit code of every mutant of ``module`` (None: not run)."""
    meta = Path("mutants/src/effllm") / f"{module}.py.meta"
    return json.loads(meta.read_text())["exit_code_by_key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=60, help="mutants per module; 0 = all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modules", nargs="+", choices=MODULES, default=list(MODULES))
    parser.add_argument("--max-children", default="2", help="parallel test workers")
    args = parser.parse_args()

    start = time.perf_counter()
    mutmut("run", "--max-children", args.max_children, BOOTSTRAP)
    rng = random.Random(args.seed)
    chosen: dict[str, list[str]] = {}
    for module in args.modules:
        names = sorted(exit_codes(module))
        k = len(names) if args.sample <= 0 else min(args.sample, len(names))
        chosen[module] = sorted(rng.sample(names, k))
        print(f"{module}: {len(names)} mutants, {k} sampled")
    mutmut("run", "--max-children", args.max_children, *[n for v in chosen.values() for n in v])

    print(f"\nmutation score per module (seed {args.seed}, {time.perf_counter() - start:.0f} s)")
    widths = (10, 8, 8, 9, 8, 6, 7)
    header = ("module", "mutants", "killed", "survived", "no test", "other", "score")
    print("".join(f"{v:>{w}}" for v, w in zip(header, widths, strict=True)))
    for module, names in chosen.items():
        codes = exit_codes(module)
        status = {n: STATUS.get(codes[n], "other") for n in names}
        n_of = Counter(status.values())
        killed = n_of["killed"] + n_of["timeout"]  # a mutant that hangs the tests is caught
        counted = killed + n_of["survived"] + n_of["no tests"]
        score = f"{killed / counted:.0%}" if counted else "-"
        row = (module, len(names), killed, n_of["survived"], n_of["no tests"])
        row += (len(names) - counted, score)
        print("".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))
        for n, s in status.items():
            if s not in ("killed", "timeout"):
                print(f"    {s:<9} {n}")


if __name__ == "__main__":
    main()
