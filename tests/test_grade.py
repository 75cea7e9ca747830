"""tools/grade.py on three submissions of Lab 1's exercise edition: complete, empty and wrong."""

import csv
import json
from pathlib import Path

import grade

ROOT = Path(__file__).resolve().parents[1]
EDITION = ROOT / "labs" / "exercises" / "01_training_cost.ipynb"
FULL = ROOT / "labs" / "01_training_cost.ipynb"


def test_grading_marks_complete_empty_and_wrong_submissions(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "empty.ipynb").write_text(EDITION.read_text())
    (folder / "complete.ipynb").write_text(FULL.read_text())
    wrong = json.loads(FULL.read_text())
    for cell in wrong["cells"]:
        text = "".join(cell["source"])
        if "solution" in cell["metadata"].get("tags", []) and "def training_flops" in text:
            cell["source"] = [text.replace("return 6 * N * D", "return 2 * N * D")]
    (folder / "wrong.ipynb").write_text(json.dumps(wrong))

    out = tmp_path / "grades.csv"
    assert grade.main([str(folder), "--out", str(out), "--timeout", "300"]) == 0
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    checks = ["training_cost_usd", "training_flops", "model_flops_utilisation"]
    assert [rows["complete"][c] for c in checks] == ["pass"] * 3
    assert [rows["empty"][c] for c in checks] == ["not attempted"] * 3
    assert [rows["wrong"][c] for c in checks] == ["pass", "fail", "pass"]
    assert rows["complete"]["note"] == "ran to the end"
