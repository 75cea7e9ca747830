"""The course's conventions: notebooks clean and listed, one repository URL, citations resolve."""

import json
import re
from pathlib import Path

import fork
import pytest

ROOT = Path(__file__).resolve().parents[1]

LABS = fork.lab_notebooks(ROOT)
TOC = (ROOT / "_toc.yml").read_text()


def test_there_are_labs():
    assert LABS, "no notebooks in labs/"


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_lab_is_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    dirty = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{nb.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_lab_is_listed_in_the_toc(nb):
    assert f"file: labs/{nb.stem}\n" in TOC, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_lab_opens_with_the_colab_setup_cell(nb):
    cells = json.loads(nb.read_text())["cells"]
    first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    assert '"google.colab" in sys.modules' in first, f"{nb.name}: first code cell is not the setup"
    assert fork.setup_cell_urls(nb), f"{nb.name}: setup cell does not install effllm from git"
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), (
        f"{nb.name}: must open with a markdown title"
    )


def test_repository_url_is_written_in_one_place():
    assert fork.check(ROOT) == []


def test_fork_rewrites_every_place(tmp_path):
    for name in ("pyproject.toml", "_config.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "labs").mkdir()
    for nb in LABS:
        (tmp_path / "labs" / nb.name).write_text(nb.read_text())
    (tmp_path / "_config.yml").write_text(
        (tmp_path / "_config.yml").read_text().replace("url: https://", "url: https://stale.")
    )
    assert fork.check(tmp_path), "a stale _config.yml URL must be reported"
    fork.rewrite(tmp_path, "https://github.com/teacher/course-fork")
    assert fork.check(tmp_path) == []
    assert fork.repository_url(tmp_path) == "https://github.com/teacher/course-fork"
    assert all(
        fork.setup_cell_urls(nb) == ["https://github.com/teacher/course-fork"]
        for nb in fork.lab_notebooks(tmp_path)
    )


def test_every_toc_file_exists_and_every_chapter_is_listed():
    files = re.findall(r"file:\s*(\S+)", TOC) + re.findall(r"root:\s*(\S+)", TOC)
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f
    for md in (ROOT / "book").glob("*.md"):
        assert f"book/{md.stem}" in files, f"{md.name} is not in _toc.yml"


def test_every_citation_has_a_bibliography_entry():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), re.M))
    pages = list((ROOT / "book").glob("*.md")) + LABS
    cited = {}
    for page in pages:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            for key in group.split(","):
                cited.setdefault(key.strip(), page.name)
    missing = {k: p for k, p in cited.items() if k not in keys}
    assert not missing, f"cited but not in references.bib: {missing}"


def test_book_fails_on_errors():
    config = (ROOT / "_config.yml").read_text()
    assert "nb_execution_raise_on_error: true" in config
    assert "only_build_toc_files: true" in config
    assert re.search(r"branch:\s*main", config)


# The episode's key days moved a year later, as the press misdated them: R1 (20 Jan), the App
# Store top spot (26 Jan), the sell-off (27 Jan) in 2026; V3 (26 Dec) in 2025.
_DAY = r"(?:2[0-8])"
MISDATED = re.compile(
    rf"\b{_DAY}\s+Jan[a-z]*\.?\s+2026\b|\bJan[a-z]*\.?\s+{_DAY},?\s+2026\b|\b2026-01-{_DAY}\b"
    r"|\b26\s+Dec[a-z]*\.?\s+2025\b|\bDec[a-z]*\.?\s+26,?\s+2025\b|\b2025-12-26\b"
)


def test_no_january_2025_event_is_dated_2026():
    """The press this course grew from misdated the events to 2026; the book must not.

    A line may quote such a date only to correct it: it must then say "wrong" or "misdated".
    """
    for page in list((ROOT / "book").glob("*.md")) + LABS:
        for line in page.read_text().splitlines():
            if MISDATED.search(line) and not re.search(r"wrong|misdat", line, re.I):
                pytest.fail(f"{page.name}: a January/February 2026 date: {line.strip()[:120]}")
