#!/usr/bin/env bash
# The labs in an environment made like Google Colab's runtime (see constraints.txt for its source):
#  1. a virtual environment on Python 3.13 holding Colab's versions of every package that
#     the course touches (IPython 7.34, ipykernel 6.17.1, numpy, pandas, matplotlib, torch, ...);
#  2. the course package installed non-editable from a copy of the working tree, with those
#     versions held fixed: pip fails if it would change one, and so does this script if
#     `pip freeze` shows any change besides effllm itself;
#  3. every lab executed alone in an empty folder outside the repository (run_labs.py).
# It prints how this environment differs from Colab and the time of each step.
#
#   tools/colab/check.sh                 all labs
#   tools/colab/check.sh labs/01_*.ipynb only these
#   COLAB_CHECK_NO_LABS=1 tools/colab/check.sh   steps 1-2 only
#   COLAB_PYTHON=/path/to/python3.13 tools/colab/check.sh
#   COLAB_CHECK_FRESH=1 tools/colab/check.sh     rebuild the environment (kept in ~/.cache)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
constraints="$here/constraints.txt"
if [ $# -gt 0 ]; then mapfile -t labs < <(realpath "$@"); else labs=("$repo"/labs/[0-9]*.ipynb); fi

step_name=""
step() {  # end the step under way (print its time) and start the next one
    if [ -n "$step_name" ]; then echo "   ($((SECONDS - step_start)) s: $step_name)"; fi
    step_name=$1
    step_start=$SECONDS
    if [ -n "$step_name" ]; then echo "== colab check: $step_name"; fi
}

# Python 3.13, as Colab runs: $COLAB_PYTHON, python3.13 on PATH, pyenv's, or Debian's package.
find_python() {
    local cand
    for cand in "${COLAB_PYTHON:-}" python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 \
        /usr/bin/python3.13 /usr/local/bin/python3.13; do
        [ -n "$cand" ] || continue
        if "$cand" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 13)' \
            >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}
step "find Python 3.13"
if ! python=$(find_python); then
    if command -v apt-get >/dev/null && apt-cache show python3.13-venv >/dev/null 2>&1; then
        sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3.13 python3.13-venv
    fi
    python=$(find_python) || {
        echo "colab check: no Python 3.13 found (Colab runs 3.13). Install one (pyenv install 3.13," \
            "or Debian's python3.13 and python3.13-venv packages) or set COLAB_PYTHON." >&2
        exit 1
    }
fi
echo "   $python: $("$python" --version)"

# The environment is 5 GB and slow to build and to delete, so it is kept between runs, named
# after constraints.txt and the Python, and reused only if `pip freeze` shows it exactly as built.
cache="${COLAB_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/effllm-colab-check}"
venv="$cache/$(sha256sum "$constraints" | cut -c1-12)-py$("$python" -c 'import platform
print(platform.python_version())')"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
quiet_pip() {  # pip, without the warnings this machine's extra local indexes cause
    "${pip[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
work=$(mktemp -d /tmp/colab-check.XXXXXX)
trap '"${pip[@]}" uninstall -y -q effllm >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

step "an environment with Colab's packages (torch 2.11.0 from PyPI: 2.7 GB with CUDA libraries)"
if [ -z "${COLAB_CHECK_FRESH:-}" ] && [ -f "$venv/built-with.txt" ] &&
    "${pip[@]}" freeze --all 2>/dev/null | sort | cmp -s - "$venv/built-with.txt"; then
    echo "   reusing $venv: its packages are exactly as built (COLAB_CHECK_FRESH=1 rebuilds it)"
else
    rm -rf "$cache"/*-py3.*  # this environment, and those of older constraints or Pythons
    mkdir -p "$cache"
    echo "   building $venv"
    "$python" -m venv "$venv"
    quiet_pip install -q --no-compile -r "$constraints"  # byte-compiled on import instead
    "${pip[@]}" freeze --all | sort >"$venv/built-with.txt"
fi
cp "$venv/built-with.txt" "$work/before.txt"

step "the course package, non-editable, Colab's versions held fixed"
# A copy of the working tree (tracked and new files, not ignored ones), as a git checkout has.
mkdir "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
    tar -C "$repo" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$work/src"
if ! "${pip[@]}" install --no-compile --constraint "$constraints" "$work/src" >"$work/pip.log" 2>&1; then
    grep -v "is ignored: it is neither" "$work/pip.log" | grep -A20 -E "conflict is caused|^ERROR" >&2
    echo "colab check: pip cannot install the course package without changing Colab's versions" \
        "(above): lower the package's requirement in pyproject.toml" >&2
    exit 1
fi
"${pip[@]}" freeze --all | sort >"$work/after.txt"
changed=$(diff "$work/before.txt" "$work/after.txt" | grep '^[<>]' | grep -v '^> effllm[= ]' || true)
if [ -n "$changed" ]; then
    echo "colab check: installing the course package changed Colab's packages:" >&2
    echo "$changed" >&2
    exit 1
fi
echo "   installed effllm; no other package changed"
# Every module of the installed package imports from an empty folder (it knows nothing of the
# repository), with Colab's versions.
(cd "$work" && env -u PYTHONPATH "$venv/bin/python" -c '
import importlib, pkgutil, effllm
names = [m.name for m in pkgutil.iter_modules(effllm.__path__)]
for name in names:
    importlib.import_module(f"effllm.{name}")
assert "site-packages" in effllm.__file__, effllm.__file__  # installed, not a checkout
print(f"   all {len(names)} modules of the installed package import: {effllm.__file__}")
')

step "how this environment differs from Colab's"
"$venv/bin/python" "$here/run_labs.py" --report "$constraints"

if [ -z "${COLAB_CHECK_NO_LABS:-}" ]; then
    step "every lab alone in an empty folder, in a kernel of this environment"
    (cd "$work" && env -u PYTHONPATH -u EFFLLM_PRESET PYDEVD_DISABLE_FILE_VALIDATION=1 \
        "$venv/bin/python" "$here/run_labs.py" "${labs[@]}")
fi
step ""
echo "== colab check: passed ($SECONDS s in all)"
