"""Keep the course's repository URL in one place: ``[project.urls] Repository`` in pyproject.toml.

Two other places must agree with it: ``repository.url`` in ``_config.yml`` (the book's launch and
repository buttons) and the ``pip install`` line in every lab's Colab setup cell.

    python tools/fork.py                       # rewrite both from pyproject.toml
    python tools/fork.py https://github.com/me/my-fork    # point everything at a fork
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
_CONFIG_URL = re.compile(r"^(repository:\s*\n(?:\s+#.*\n)*\s+url:\s*)(\S+)", re.M)
_SETUP_URL = re.compile(r"(effllm @ git\+)(https://[^@\"\s]+)(@)")


def repository_url(root: Path) -> str:
    """The URL in ``[project.urls] Repository`` of ``root/pyproject.toml``."""
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def lab_notebooks(root: Path) -> list[Path]:
    """Every lab notebook, sorted."""
    return sorted(p for p in (root / "labs").glob("*.ipynb"))


def setup_cell_urls(notebook: Path) -> list[str]:
    """The repository URLs that the notebook's first code cell installs from."""
    cells = json.loads(notebook.read_text())["cells"]
    first = next(("".join(c["source"]) for c in cells if c["cell_type"] == "code"), "")
    return [m.group(2) for m in _SETUP_URL.finditer(first)]


def check(root: Path) -> list[str]:
    """Every place that disagrees with pyproject.toml's URL, as readable messages."""
    url = repository_url(root)
    problems = []
    m = _CONFIG_URL.search((root / "_config.yml").read_text())
    if not m:
        problems.append("_config.yml has no repository.url")
    elif m.group(2) != url:
        problems.append(f"_config.yml repository.url is {m.group(2)}, pyproject.toml says {url}")
    for nb in lab_notebooks(root):
        urls = setup_cell_urls(nb)
        if not urls:
            problems.append(f"{nb.relative_to(root)}: first code cell installs no effllm @ git+URL")
        problems += [
            f"{nb.relative_to(root)}: setup cell installs from {u}, pyproject.toml says {url}"
            for u in urls
            if u != url
        ]
    return problems


def rewrite(root: Path, url: str | None = None) -> None:
    """Set the URL in pyproject.toml (if ``url`` is given), _config.yml and every setup cell."""
    if url is not None:
        if not re.fullmatch(r"https://\S+[^/]", url):
            raise ValueError(f"expected an https URL without a trailing slash, got {url!r}")
        py = root / "pyproject.toml"
        py.write_text(_PYPROJECT_URL.sub(lambda m: m.group(1) + url + m.group(3), py.read_text()))
    url = repository_url(root)
    cfg = root / "_config.yml"
    cfg.write_text(_CONFIG_URL.sub(lambda m: m.group(1) + url, cfg.read_text()))
    for nb in lab_notebooks(root):
        text = nb.read_text()
        nb.write_text(_SETUP_URL.sub(lambda m: m.group(1) + url + m.group(3), text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="new repository URL (default: keep pyproject's)")
    parser.add_argument("--check", action="store_true", help="only report disagreements")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root"
    )
    args = parser.parse_args(argv)
    if not args.check:
        rewrite(args.root, args.url)
    problems = check(args.root)
    for p in problems:
        print(p)
    if not problems:
        print(f"all places point at {repository_url(args.root)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
