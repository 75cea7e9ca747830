"""The labs' build-it cells and the exercise edition made from them (tools/exercises.py)."""

import json
import re
from pathlib import Path

import exercises
import pytest
import torch

from effllm.checks import CheckFailedError, NotWrittenError

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("*.ipynb"))
MINIMUM = {"02_moe": 4, "03_attention_kv_cache": 4, "04_grpo": 4}  # solution cells; others 3


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


CHECK_CALL = re.compile(r"^\w+ = check_\w+\.\w+\(\w+\)$")


def pairs(path: Path) -> list[tuple[str, str]]:
    """(solution source, its check calls) for each solution cell of a lab."""
    cs = cells(path)
    out = []
    for i, c in enumerate(cs):
        if "solution" in exercises.tags(c):
            nxt = cs[i + 1]
            assert "check" in exercises.tags(nxt), f"{path.name}: cell {i + 1} must be a check"
            calls = [line for line in exercises.source(nxt).splitlines() if CHECK_CALL.match(line)]
            assert calls, f"{path.name}: cell {i + 1} calls no check_<lab>.<name>(<name>)"
            out.append((exercises.source(c), "\n".join(calls)))
    return out


def imports(path: Path) -> dict:
    """A namespace holding what the lab's imports cell (its third cell) imports."""
    ns: dict = {}
    exec(exercises.source(cells(path)[2]), ns)
    return ns


def perturbed(fn):
    """fn with its result changed a little: floats scaled by 1.01, integers moved by one."""

    def nudge(x):
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                return x * 1.01
            y = x.clone()
            y.view(-1)[0] += 1
            return y
        if isinstance(x, tuple | list):
            return type(x)(nudge(v) for v in x)
        if isinstance(x, bool):
            return not x
        if isinstance(x, int | float):
            return x * 1.01 if x else x + 0.01
        return x

    return lambda *args, **kwargs: nudge(fn(*args, **kwargs))


def test_the_exercise_edition_is_up_to_date():
    assert exercises.main(["--check"]) == 0, "run: python tools/exercises.py"


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.stem)
def test_every_lab_has_build_it_cells_each_followed_by_a_check(lab):
    assert len(pairs(lab)) >= MINIMUM.get(lab.stem, 3)


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.stem)
def test_a_subtly_wrong_solution_fails_its_check(lab):
    """Each solution, its result nudged by 1%, is rejected by the check cell after it."""
    for solution, check in pairs(lab):
        ns = imports(lab)
        exec(solution, ns)
        names = [
            line.split("(")[0][4:] for line in solution.splitlines() if line.startswith("def ")
        ]
        for name in names:
            trial = dict(ns)
            exec(check.replace(f"({name})", "(__student__)"), {**trial, "__student__": ns[name]})
            trial["__student__"] = perturbed(ns[name])
            with pytest.raises(CheckFailedError):
                exec(check.replace(f"({name})", "(__student__)"), trial)


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.stem)
def test_exercise_functions_say_write_this_and_their_checks_stand_aside(lab, capsys):
    edition = ROOT / "labs" / "exercises" / lab.name
    for solution, check in pairs(edition):
        ns = imports(lab)
        exec(solution, ns)
        name = next(
            line.split("(")[0][4:] for line in solution.splitlines() if line.startswith("def ")
        )
        with pytest.raises(NotWrittenError, match="write .* here"):
            ns[name](*([None] * ns[name].__code__.co_argcount))
        exec(check, ns)
        assert "is not written yet" in capsys.readouterr().out


def test_blanking_keeps_comments_signature_and_docstring():
    code = '# the equation: y = 2x\ndef f(x):\n    """Twice x."""\n    y = 2 * x\n    return y\n'
    out = exercises.blank_functions(code)
    assert out.endswith('# the equation: y = 2x\ndef f(x):\n    """Twice x."""\n    todo("f")\n')
    assert out.startswith(exercises.WRITE_THIS + "\n" + exercises.TODO_IMPORT)
    with pytest.raises(ValueError, match="docstring"):
        exercises.blank_functions("def f(x):\n    return x\n")
    with pytest.raises(ValueError, match="at least one function"):
        exercises.blank_functions("x = 1\n")
