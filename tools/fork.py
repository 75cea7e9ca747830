"""Keep the course's repository URL and release in one place: pyproject.toml.

``[project.urls] Repository`` holds the URL and ``[tool.effllm] course_ref`` the release (a tag or
commit) that Colab installs. Other places must agree with them: ``repository.url`` in
``_config.yml`` (the book's launch and repository buttons), the ``REPOSITORY`` and ``REF`` lines
of every lab's Colab setup cell, and the link to its exercise edition in its title cell.

    python tools/fork.py                       # rewrite all places from pyproject.toml
    python tools/fork.py https://github.com/me/my-fork    # point everything at a fork
    python tools/fork.py --ref v0.2.0          # install that release in Colab this term
    python tools/fork.py --check               # list disagreements, exit 1 if any

A tool of the repository, run from a checkout (it edits the checkout's files).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

_PYPROJECT_URL = re.compile(r'^(Repository\s*=\s*")([^"]+)(")', re.M)
_PYPROJECT_REF = re.compile(r'^(course_ref\s*=\s*")([^"]+)(")', re.M)
_CONFIG_URL = re.compile(r"^(repository:\s*\n(?:\s+#.*\n)*\s+url:\s*)(\S+)", re.M)
# The setup cell's two lines that name what Colab installs: REPOSITORY = "..." and REF = "..."
_SETUP_LINE = {
    name: re.compile(rf'^(\s*{name} = ")([^"]*)(")', re.M) for name in ("REPOSITORY", "REF")
}
# A git ref: a tag, a branch or a commit, without spaces, quotes or the characters git forbids.
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def _pyproject(root: Path) -> dict:
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def repository_url(root: Path) -> str:
    """The URL in ``[project.urls] Repository`` of ``root/pyproject.toml``."""
    return _pyproject(root)["project"]["urls"]["Repository"]


def course_ref(root: Path) -> str:
    """The release that Colab installs: ``[tool.effllm] course_ref`` of ``root/pyproject.toml``."""
    return _pyproject(root)["tool"]["effllm"]["course_ref"]


def lab_notebooks(root: Path) -> list[Path]:
    """Every lab notebook, sorted."""
    return sorted(p for p in (root / "labs").glob("*.ipynb"))


def _setup_cell(notebook: dict) -> dict | None:
    """The notebook's first code cell, which must be the Colab setup."""
    return next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)


def setup_cell_source(notebook: Path) -> str:
    """The code of the notebook's first code cell ('' if it has none)."""
    cell = _setup_cell(json.loads(notebook.read_text()))
    return "".join(cell["source"]) if cell else ""


def setup_cell_pins(notebook: Path) -> dict[str, list[str]]:
    """The values of the setup cell's ``REPOSITORY`` and ``REF`` lines, each as a list."""
    source = setup_cell_source(notebook)
    return {name: [m.group(2) for m in rx.finditer(source)] for name, rx in _SETUP_LINE.items()}


# The title cell of every lab links to its exercise edition in Colab, at the release Colab installs.
_EXERCISE_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/[^)\s]+/labs/exercises/[\w.-]+\.ipynb"
)


def exercise_link(url: str, ref: str, notebook: Path) -> str:
    """The Colab address of ``notebook``'s exercise edition in repository ``url`` at ``ref``."""
    if not url.startswith("https://github.com/"):
        raise ValueError(f"Colab opens notebooks from GitHub; {url} is not a GitHub repository")
    path = url.removeprefix("https://github.com/")
    return (
        f"https://colab.research.google.com/github/{path}/blob/{ref}/labs/exercises/{notebook.name}"
    )


def title_cell_links(notebook: Path) -> list[str]:
    """The exercise-edition links in the notebook's first (title) cell."""
    cells = json.loads(notebook.read_text())["cells"]
    return _EXERCISE_LINK.findall("".join(cells[0]["source"])) if cells else []


def check(root: Path) -> list[str]:
    """Every place that disagrees with pyproject.toml's URL and ref, as readable messages."""
    want = {"REPOSITORY": repository_url(root), "REF": course_ref(root)}
    problems = []
    m = _CONFIG_URL.search((root / "_config.yml").read_text())
    if not m:
        problems.append("_config.yml has no repository.url")
    elif m.group(2) != want["REPOSITORY"]:
        problems.append(
            f"_config.yml repository.url is {m.group(2)}, pyproject.toml says {want['REPOSITORY']}"
        )
    for nb in lab_notebooks(root):
        for name, values in setup_cell_pins(nb).items():
            if len(values) != 1:
                problems.append(f"{nb.relative_to(root)}: setup cell needs one {name} = line")
            problems += [
                f"{nb.relative_to(root)}: setup cell has {name} = {v!r}, pyproject.toml says "
                f"{want[name]!r}"
                for v in values
                if v != want[name]
            ]
        links, link = title_cell_links(nb), exercise_link(want["REPOSITORY"], want["REF"], nb)
        if links != [link]:
            problems.append(f"{nb.relative_to(root)}: title cell links to {links}, not to {link}")
    return problems


def _set_setup_cells(root: Path, values: dict[str, str]) -> None:
    for nb in lab_notebooks(root):
        notebook = json.loads(nb.read_text())
        cell = _setup_cell(notebook)
        if cell is None:
            continue
        source = "".join(cell["source"])
        for name, rx in _SETUP_LINE.items():
            source = rx.sub(lambda m, v=values[name]: m.group(1) + v + m.group(3), source)
        cell["source"] = source.splitlines(keepends=True)
        link = exercise_link(values["REPOSITORY"], values["REF"], nb)
        title = notebook["cells"][0]
        title["source"] = _EXERCISE_LINK.sub(link, "".join(title["source"])).splitlines(
            keepends=True
        )
        nb.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def rewrite(root: Path, url: str | None = None, ref: str | None = None) -> None:
    """Set the URL and ref in pyproject.toml (those given), then in _config.yml and the labs."""
    py = root / "pyproject.toml"
    if url is not None:
        if not re.fullmatch(r"https://\S+[^/]", url):
            raise ValueError(f"expected an https URL without a trailing slash, got {url!r}")
        py.write_text(_PYPROJECT_URL.sub(lambda m: m.group(1) + url + m.group(3), py.read_text()))
    if ref is not None:
        if not _REF.fullmatch(ref) or ".." in ref:
            raise ValueError(f"expected a git tag, branch or commit, got {ref!r}")
        py.write_text(_PYPROJECT_REF.sub(lambda m: m.group(1) + ref + m.group(3), py.read_text()))
    url, ref = repository_url(root), course_ref(root)
    cfg = root / "_config.yml"
    cfg.write_text(_CONFIG_URL.sub(lambda m: m.group(1) + url, cfg.read_text()))
    _set_setup_cells(root, {"REPOSITORY": url, "REF": ref})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="new repository URL (default: keep pyproject's)")
    parser.add_argument("--ref", help="tag or commit for Colab to install (default: pyproject's)")
    parser.add_argument("--check", action="store_true", help="only report disagreements")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root"
    )
    args = parser.parse_args(argv)
    if not args.check:
        rewrite(args.root, args.url, args.ref)
    problems = check(args.root)
    for p in problems:
        print(p)
    if not problems:
        print(f"all places point at {repository_url(args.root)} @ {course_ref(args.root)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
