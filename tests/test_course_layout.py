"""The course's conventions: notebooks clean and listed, one repository URL, citations resolve."""

import json
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import fork
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    source = fork.setup_cell_source(nb)
    assert 'f"effllm @ git+{REPOSITORY}@{REF}"' in source, f"{nb.name}: setup cell installs no ref"
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), (
        f"{nb.name}: must open with a markdown title"
    )


def test_repository_url_and_ref_are_written_in_one_place():
    assert fork.check(ROOT) == []
    assert fork.course_ref(ROOT) not in ("main", "master", "HEAD"), "Colab must install a release"


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
    fork.rewrite(tmp_path, "https://github.com/teacher/course-fork", ref="spring-2027")
    assert fork.check(tmp_path) == []
    assert fork.repository_url(tmp_path) == "https://github.com/teacher/course-fork"
    assert fork.course_ref(tmp_path) == "spring-2027"
    for nb in fork.lab_notebooks(tmp_path):
        pins = fork.setup_cell_pins(nb)
        assert pins == {
            "REPOSITORY": ["https://github.com/teacher/course-fork"],
            "REF": ["spring-2027"],
        }
        assert fork.title_cell_links(nb) == [
            "https://colab.research.google.com/github/teacher/course-fork/blob/spring-2027/labs/"
            f"exercises/{nb.name}"
        ]
        original = json.loads((ROOT / "labs" / nb.name).read_text())
        rewritten = json.loads(nb.read_text())
        # Only the title's link and the setup cell change.
        assert rewritten["cells"][2:] == original["cells"][2:]
        title = zip(original["cells"][0]["source"], rewritten["cells"][0]["source"], strict=True)
        for before, after in title:
            assert after == before or "colab.research.google.com" in after
    with pytest.raises(ValueError):
        fork.rewrite(tmp_path, ref="v1; rm -rf /")


def _run_setup_cell(nb, monkeypatch, pip_returncode=0, pip_output="", in_colab=True):
    """Execute ``nb``'s setup cell as Colab would, with pip replaced by a stub; return its calls."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, pip_returncode, stdout="", stderr=pip_output)

    monkeypatch.setattr(subprocess, "run", fake_run)
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(fork.setup_cell_source(nb), nb.name, "exec"), {})
    return calls


# What pip and git print (pip 24, git 2.39) when the install cannot work.
PIP_OFFLINE = (
    "fatal: unable to access 'https://github.com/x/y/': Could not resolve host: github.com\n"
    "error: subprocess-exited-with-error\n"
)
PIP_NO_REF = (
    "WARNING: Did not find branch or tag 'v0.1.0', assuming revision or ref.\n"
    "error: pathspec 'v0.1.0' did not match any file(s) known to git\n"
)
PIP_NO_REPO = (
    "remote: Repository not found.\nfatal: repository 'https://github.com/x/y/' not found\n"
)


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_setup_cell_installs_the_pinned_release_quietly(nb, monkeypatch, capsys):
    assert _run_setup_cell(nb, monkeypatch, in_colab=False) == [], "outside Colab it must not pip"
    [cmd] = _run_setup_cell(nb, monkeypatch)
    url, ref = fork.repository_url(ROOT), fork.course_ref(ROOT)
    assert cmd[1:] == ["-m", "pip", "install", "-q", f"effllm @ git+{url}@{ref}"]
    assert capsys.readouterr() == ("", ""), "the setup cell must be quiet when it works"


@pytest.mark.parametrize(
    "pip_output, says",
    [
        (PIP_OFFLINE, "cannot reach the internet"),
        (PIP_NO_REF, "has no release v0.1.0"),
        (PIP_NO_REPO, "does not exist"),
        ("ERROR: No space left on device\n", "pip failed: ERROR: No space left on device"),
    ],
    ids=["offline", "no-ref", "no-repository", "other"],
)
def test_failed_setup_says_what_went_wrong_in_one_sentence(pip_output, says, monkeypatch):
    nb = LABS[0]
    with pytest.raises(Exception) as failure:
        _run_setup_cell(nb, monkeypatch, pip_returncode=1, pip_output=pip_output)
    assert not isinstance(failure.value, subprocess.CalledProcessError)
    shown = failure.value._render_traceback_()  # what IPython prints instead of a traceback
    assert len(shown) == 1 and "\n" not in shown[0], shown
    sentence = shown[0]
    assert says in sentence and sentence.endswith(".") and ". " not in sentence, sentence


def test_failed_setup_with_real_pip_names_the_problem(monkeypatch, tmp_path):
    """Run the setup cell's pip for real against a host that does not resolve."""
    source = fork.setup_cell_source(LABS[0]).replace(
        fork.repository_url(ROOT), "https://course-repository.invalid/no/such"
    )
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("PIP_TARGET", str(tmp_path))  # nothing is installed into this environment
    with pytest.raises(Exception, match="cannot reach the internet") as failure:
        exec(compile(source, "setup", "exec"), {})
    assert failure.value._render_traceback_() == [str(failure.value)]


# Labs that train a model ask Colab for a GPU (in the metadata Colab itself writes when a user picks
# Runtime > Change runtime type > T4 GPU); the others do not, so Colab does not spend one on them.
_TRAINS = re.compile(r"\beffllm\.(?:train|grpo)\b|from effllm import [^\n]*\b(?:train|grpo)\b")


def _trains(nb: Path) -> bool:
    cells = json.loads(nb.read_text())["cells"]
    return bool(_TRAINS.search("\n".join("".join(c["source"]) for c in cells)))


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_labs_that_train_ask_colab_for_a_gpu(nb):
    metadata = json.loads(nb.read_text())["metadata"]
    if _trains(nb):
        assert metadata.get("accelerator") == "GPU", f"{nb.name} trains: it should ask for a GPU"
        assert metadata.get("colab", {}).get("gpuType") == "T4", nb.name
    else:
        assert "accelerator" not in metadata, f"{nb.name} does not train: no GPU needed"
        assert "gpuType" not in metadata.get("colab", {}), nb.name


def test_the_training_labs_are_recognised():
    assert {nb.stem[:2] for nb in LABS if _trains(nb)} >= {"02", "03", "04"}


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


def test_glued_numbers_name_a_key_the_book_can_find():
    """A number glued from another page is written ``path::key:format``: myst-nb splits the role
    at its last colon, so ``path::key`` alone loses the key. The exercise edition, which the
    book shows unexecuted, reads every number from its full lab's run."""
    exercises = sorted((ROOT / "labs" / "exercises").glob("*.ipynb"))
    for page in list((ROOT / "book").glob("*.md")) + LABS + exercises:
        for role in re.findall(r"\{glue:text\}`([^`]+)`", page.read_text(encoding="utf-8")):
            if "::" in role:
                path, key = role.split("::")
                assert ":" in key, f"{page.name}: {role!r} has no format after the key"
                assert (page.parent / path).resolve().exists(), f"{page.name}: no {path}"
            else:
                assert page not in exercises, f"{page.name}: {role!r} is not run in the book"


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


def _colab_pins() -> dict[str, str]:
    lines = (ROOT / "tools/colab/constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def test_the_package_requires_nothing_that_colab_would_have_to_change():
    """Every dependency is pinned in Colab's list (tools/colab/) at a version that satisfies it."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        dependencies = [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]
    pins = _colab_pins()
    for key in ("ipython", "ipykernel", "traitlets", "numpy", "pandas", "matplotlib", "torch"):
        assert key in pins, f"tools/colab/constraints.txt does not pin {key}"
    for dep in dependencies:
        name = canonicalize_name(dep.name)
        assert name in pins, f"{dep.name} is not in Colab's list: the check cannot hold it fixed"
        assert dep.specifier.contains(pins[name]), f"Colab's {name}=={pins[name]} fails {dep}"


def test_every_lab_links_to_its_exercise_edition_at_the_pinned_release(tmp_path):
    for nb in fork.lab_notebooks(ROOT):
        link = fork.exercise_link(fork.repository_url(ROOT), fork.course_ref(ROOT), nb)
        assert fork.title_cell_links(nb) == [link], nb.name
        assert (ROOT / "labs" / "exercises" / nb.name).exists(), nb.name


def _markdown_cells(nb: Path) -> list[str]:
    cells = json.loads(nb.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_lab_states_prerequisites_and_time_ends_with_a_summary_and_links_the_glossary(nb):
    """CONTRIBUTING.md's page at a glance: the title cell's Prerequisites and Time, a ``##
    Summary`` of bullets as the last section before the exercises, and a link to the glossary."""
    markdown = _markdown_cells(nb)
    title = markdown[0]
    for line in ("**Prerequisites:**", "**Time:**"):
        assert re.search(rf"^{re.escape(line)} \S", title, re.M), f"{nb.name}: no {line} line"
    headings = [h for text in markdown for h in re.findall(r"^## .*$", text, re.M)]
    assert "## Summary" in headings, f"{nb.name}: no ## Summary section"
    after = headings[headings.index("## Summary") + 1 :]
    assert after in ([], ["## Exercises"]), f"{nb.name}: sections after the summary: {after}"
    text = "\n".join(markdown)
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    bullets = re.findall(r"^- \S", summary, re.M)
    assert len(bullets) >= 3, f"{nb.name}: the summary has {len(bullets)} bullets, not 3 or more"
    assert "](../book/glossary.md" in text, f"{nb.name}: no link to ../book/glossary.md"


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_lab_shows_the_diagram_of_its_mechanism_with_alt_text(nb):
    """Each lab shows at least one of the book's diagrams (``effllm.diagrams``, committed in
    book/images/), as a Markdown image whose alt text describes it, and the SVG exists."""
    text = "\n".join(_markdown_cells(nb))
    images = re.findall(r"!\[([^\]]*)\]\(\.\./book/images/([\w-]+\.svg)\)", text)
    assert images, f"{nb.name}: shows no diagram from book/images"
    for alt, svg in images:
        assert (ROOT / "book" / "images" / svg).exists(), f"{nb.name}: {svg} does not exist"
        assert len(alt.split()) >= 8, f"{nb.name}: the alt text of {svg} says too little: {alt!r}"


@pytest.mark.parametrize("nb", LABS, ids=lambda p: p.name)
def test_cells_that_only_glue_are_hidden_from_the_book(nb):
    """A cell that only hands numbers to the book (``glue_all``, or nothing but ``glue`` calls)
    is tagged ``remove-cell``, so the book's page shows the analysis, not the plumbing."""
    for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        statements = [
            line for line in code.splitlines() if line.strip() and not line.startswith(("#", " "))
        ]
        only_glue = statements and all(
            s.startswith(("glue(", "glue_all(", "})")) for s in statements
        )
        if "glue_all(" in code or only_glue:
            tags = cell.get("metadata", {}).get("tags", [])
            assert "remove-cell" in tags, f"{nb.name}, cell {i}: glue only, but shown in the book"
