"""Run every lab as a Colab student does, in the environment this script runs in (check.sh's).

Each notebook is copied alone into an empty temporary folder outside the repository and executed
start to finish by nbclient in a kernel of this Python (ipykernel, as Colab runs it). Before the
labs, one lab's setup cell runs with ``google.colab`` faked and an unreachable repository, to
check that its failure shows one sentence under this IPython.

    python run_labs.py LAB.ipynb [LAB.ipynb ...]      exit 1 if any lab fails
    COLAB_CHECK_JOBS=1 python run_labs.py ...         one lab at a time (default: two)

Also ``python run_labs.py --report CONSTRAINTS``: list how this environment differs from Colab's
(the pins in CONSTRAINTS, and packages it does not pin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

# Why a package that Colab's list does not pin is here anyway.
_EXTRA_REASONS = {
    r"nvidia-.*|cuda-.*|triton": "pulled by PyPI's torch, the CUDA build (Colab: torch +cpu)",
    r"jedi": "required by IPython 7.34; Colab's published list has none",
    r"effllm": "the course package under test",
    r"pip": "the venv's own pip (Colab: 24.1.2)",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def report(constraints: Path) -> int:
    """Print how this environment differs from the pins; 1 if a pin differs or a package is
    unexplained, else 0."""
    pins, colab_python = {}, "?"
    for line in constraints.read_text().splitlines():
        if m := re.match(r"# Colab's Python: (\S+)", line):
            colab_python = m.group(1)
        elif "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version.strip()
    here = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    print(f"  Python {sys.version.split()[0]} here, {colab_python} in Colab")
    wrong = 0
    for name, version in sorted(pins.items()):
        got = here.get(name)
        if got is None or got.split("+")[0] != version:
            print(f"  PINNED PACKAGE DIFFERS: {name} {got} here, {version} in Colab")
            wrong += 1
    if not wrong:
        print(f"  all {len(pins)} pinned packages have Colab's versions")
    print(f"  torch {here.get('torch')}: PyPI's Linux wheel, the CUDA build; Colab's is +cpu")
    extras: dict[str, list[str]] = {}
    for name, version in sorted(here.items()):
        if name not in pins:
            why = next((w for rx, w in _EXTRA_REASONS.items() if re.fullmatch(rx, name)), None)
            extras.setdefault(why or "UNEXPECTED", []).append(f"{name}=={version}")
            wrong += why is None
    for why, names in extras.items():
        print(f"  not in Colab's list: {', '.join(names)}: {why}")
    return 1 if wrong else 0


def _use_this_python_as_kernel(jupyter_dir: Path) -> None:
    """Make the kernel named python3 this interpreter, whatever kernels the machine has."""
    spec = jupyter_dir / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    quiet = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # the debugger's warning on Python 3.11+
    spec_json = {"argv": argv, "env": quiet, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    os.environ["JUPYTER_DATA_DIR"] = str(jupyter_dir)
    os.environ["JUPYTER_PREFER_ENV_PATH"] = "0"  # search that folder before the environment's
    os.environ.pop("PYTHONPATH", None)  # the package must come from the environment, not a checkout


def _execute(nb, folder: Path, allow_errors: bool = False):
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder)}},
    )
    return client.execute()


def check_setup_failure(lab: Path) -> bool:
    """Run ``lab``'s setup cell in Colab mode against an unreachable host; one sentence shown?"""
    import nbformat

    nb = nbformat.read(lab, as_version=4)
    setup = nb.cells[1].source
    url = re.search(r'REPOSITORY = "([^"]+)"', setup).group(1)
    probe = nbformat.v4.new_notebook()
    probe.cells = [
        nbformat.v4.new_code_cell(
            "import sys, types, IPython\n"
            'sys.modules["google.colab"] = types.ModuleType("google.colab")\n'
            "print(sys.executable, IPython.__version__)"
        ),
        nbformat.v4.new_code_cell(setup.replace(url, "https://course-repository.invalid/x/y")),
    ]
    with tempfile.TemporaryDirectory(prefix="colab-setup-") as folder:
        _execute(probe, Path(folder), allow_errors=True)
    kernel = probe.cells[0].outputs[0]["text"].strip()
    print(f"  kernel: {kernel}")
    if not kernel.startswith(sys.executable + " "):
        print(f"  the kernel is not this environment's Python ({sys.executable})")
        return False
    [shown] = probe.cells[1].outputs
    lines = shown.get("traceback", [])
    ok = shown["output_type"] == "error" and len(lines) == 1 and "internet" in lines[0]
    print(f"  setup cell offline: {'ok' if ok else 'FAILED'}: {lines}")
    return ok


def _failed(cell) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def run_lab(lab: Path) -> tuple[bool, float, str]:
    """Execute ``lab`` alone in an empty folder; (passed, seconds, error summary)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    with tempfile.TemporaryDirectory(prefix="colab-lab-") as folder:
        copy = Path(folder) / lab.name
        shutil.copy(lab, copy)
        nb = nbformat.read(copy, as_version=4)
        start = time.perf_counter()
        try:
            _execute(nb, Path(folder))
        except CellExecutionError as error:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # without the terminal's colours
            last = [line for line in text.splitlines() if line.strip()][-1]
            cell = next((i for i, c in enumerate(nb.cells) if _failed(c)), "?")
            return False, time.perf_counter() - start, f"cell {cell}: {last[:300]}"
        return True, time.perf_counter() - start, ""


def main(argv: list[str]) -> int:
    if argv[:1] == ["--report"]:
        return report(Path(argv[1]))
    labs = [Path(a).resolve() for a in argv]
    with tempfile.TemporaryDirectory(prefix="colab-jupyter-") as jupyter_dir:
        _use_this_python_as_kernel(Path(jupyter_dir))
        failed = 0 if check_setup_failure(labs[0]) else 1
        # Each lab computes on one thread (runtime.tiny_model_threads), so a 2-core machine runs
        # two at once; COLAB_CHECK_JOBS=1 runs them one by one (and times them without company).
        jobs = int(os.environ.get("COLAB_CHECK_JOBS", "2"))
        print(f"  {'lab':34} {'result':6} {'seconds':>7}   ({jobs} at a time)")
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for lab, (passed, seconds, error) in zip(labs, pool.map(run_lab, labs), strict=True):
                failed += not passed
                print(f"  {lab.name:34} {'pass' if passed else 'FAIL':6} {seconds:7.1f}  {error}")
                sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
