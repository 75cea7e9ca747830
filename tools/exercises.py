"""Make the exercise edition of every lab: the same notebooks, the taught functions left to write.

    python tools/exercises.py            # write labs/exercises/*.ipynb from labs/*.ipynb
    python tools/exercises.py --check    # exit 1 if the committed edition is out of date

In a full lab, a cell tagged ``solution`` defines the functions the lab teaches, and the cell
after it (tagged ``check``) checks them against the course's implementation. In the exercise
edition each such function keeps its signature and docstring (where its equation is written);
its body becomes ``todo("name")``, which raises a "write this" message when called. The check
cells are unchanged: until a function is written, its check says so and the lab goes on with the
course's implementation, so an unfinished exercise notebook still runs from top to bottom.
The answers to the end-of-lab exercises (``<details>`` blocks) are left out, and so are the cells
tagged ``answers`` that compute the numbers they quote.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
OUT = LABS / "exercises"
TODO_IMPORT = "from effllm.checks import todo"
WRITE_THIS = "# Write this: replace each todo(...) line with your code, then run the check below."
BANNER = (
    "> **Exercise edition.** The functions in the cells that begin with `# Write this` are yours to"
    " write:"
    " each keeps its docstring and equation, and the check cell below it tells you whether your"
    " version is right. Until you write one, its check says so and the lab runs on the course's"
    " implementation, so you can work in any order. The full lab, with solutions, is"
    " [labs/{name}](../{name})."
)
ANSWERS = re.compile(r"\n*<details><summary>Answers</summary>.*?</details>\n*", re.S)
# A number glued in the lab's own page: the book shows this edition unexecuted, so it reads the
# number from the full lab's run instead (myst-nb needs a format after ``path::key``).
OWN_GLUE = re.compile(r"\{glue:text\}`(\w+)(?::([^`]*))?`")
SELF_LINK = re.compile(r"\n\n\*\*Exercise edition:\*\*.*?(?=\n\n|$)", re.S)  # the lab's link here


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def source(cell: dict) -> str:
    return "".join(cell["source"])


def set_source(cell: dict, text: str) -> None:
    lines = text.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def blank_functions(code: str) -> str:
    """``code`` with the body of every top-level function replaced by ``todo(name)``.

    Everything before a function's body stays: comments above it, decorators, the signature and
    the docstring. Code outside functions is kept; a solution cell normally has none.
    """
    tree = ast.parse(code)
    lines = code.split("\n")
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not functions:
        raise ValueError("a solution cell must define at least one function:\n" + code)
    out, cursor = [], 0
    for fn in functions:
        body = fn.body
        has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        keep_to = body[0].end_lineno if has_doc else fn.body[0].lineno - 1  # 1-based, inclusive
        if not has_doc:
            raise ValueError(f"{fn.name}() in a solution cell needs a docstring with its equation")
        indent = " " * body[0].col_offset
        out += lines[cursor:keep_to]
        out.append(f'{indent}todo("{fn.name}")')
        cursor = fn.end_lineno
    out += lines[cursor:]
    text = "\n".join(out)
    return f"{WRITE_THIS}\n{TODO_IMPORT}\n\n\n{text}"


def exercise_edition(notebook: dict, name: str) -> dict:
    """The exercise edition of one lab notebook (a new dict; the input is not changed)."""
    nb = copy.deepcopy(notebook)
    # The arithmetic behind the answers goes, as the answers do.
    nb["cells"] = [c for c in nb["cells"] if "answers" not in tags(c)]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if "solution" in tags(cell):
            set_source(cell, blank_functions(source(cell)))
            cell["metadata"]["tags"] = [t for t in tags(cell) if t != "hide-input"]
            cell["metadata"].pop("mystnb", None)  # the book's "try it first" toggle
        elif cell["cell_type"] == "markdown":
            text = source(cell)
            # One folder deeper: links into the book climb one more level (other labs' links
            # stay, and lead to their exercise editions beside this one).
            edited = ANSWERS.sub("\n", text).rstrip("\n").replace("](../book/", "](../../book/")
            edited = OWN_GLUE.sub(
                lambda m: f"{{glue:text}}`../{name}::{m[1]}:{m[2] or 's'}`", edited
            )
            if edited != text.rstrip("\n"):
                set_source(cell, edited)
    first = nb["cells"][0]
    heading, _, rest = SELF_LINK.sub("", source(first)).rstrip("\n").partition("\n")
    set_source(first, f"{heading} (exercise edition)\n{rest}\n\n" + BANNER.format(name=name))
    # The book shows this edition as it is, unexecuted: its functions are for the student to write.
    nb["metadata"]["mystnb"] = {"execution_mode": "off"}
    return nb


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def editions(root: Path = ROOT) -> dict[Path, str]:
    """Every exercise notebook's path and text, from the full labs under ``root``."""
    labs = sorted((root / "labs").glob("*.ipynb"))
    return {
        root / "labs" / "exercises" / lab.name: render(
            exercise_edition(json.loads(lab.read_text(encoding="utf-8")), lab.name)
        )
        for lab in labs
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    stale = []
    for path, text in editions().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path.relative_to(ROOT)}: {verb}")
    if args.check and stale:
        print("run: python tools/exercises.py")
        return 1
    if not stale:
        print("the exercise edition is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
