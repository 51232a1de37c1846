"""``autograder export otter``: the assignment in otter-grader's assign format.

Writes ``DIR/<notebook>.ipynb`` (an otter "master notebook") with the support
files and ``hidden_tests.payload`` beside it; ``otter assign`` turns it into a
student notebook and an autograder zip (which ``otter run`` grades with, and
Gradescope accepts). Answer cells stay where they are, with their solution
regions (otter strips them from every cell); each exercise becomes an otter
question at the end of the notebook, holding one hidden exception-based test
per hidden test case, worth that case's points. The reference and the hidden
tests travel only in the autograder zip (``autograder_files``).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import yaml

from autograder.authoring.assignment import Assignment
from autograder.export.notebook import copy_support_files, instructor_notebook, student_answers, with_answers
from autograder.export.payload import encode_payload, hidden_payload
from autograder.grade.bundle import Bundle

PAYLOAD_FILE = "hidden_tests.payload"


def export_otter(assignment: Assignment, bundle: Bundle, out: Path) -> Path:
    """Write the otter master notebook and its files; returns the notebook's path."""
    out.mkdir(parents=True, exist_ok=True)
    files = copy_support_files(bundle, out)
    payload = hidden_payload(bundle)
    (out / PAYLOAD_FILE).write_text(encode_payload(payload) + "\n")
    config = {
        "name": assignment.id,
        "init_cell": False,
        "check_all_cell": False,
        "export_cell": False,
        "strip_solutions_from_all_cells": True,  # our answer cells stay in place, outside otter's question blocks
        "files": files,
        "autograder_files": [PAYLOAD_FILE],
        "tests": {"files": False, "ok_format": False},
        "generate": True,  # the autograder zip for `otter run` and Gradescope
    }
    nb = instructor_notebook(assignment)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _otter_solution_markers(cell.source)
    cells = [nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False))]
    cells += nb.cells
    for exercise in payload["exercises"]:
        cases = [c for c in payload["cases"] if c["exercise"] == exercise["name"]]
        cells += _question(exercise["name"], cases)
    if payload["free_points"]:
        cells += _question("free_points", [{"exercise": "free_points", "name": "", "points": payload["free_points"]}])
    nb.cells = cells
    path = out / f"{assignment.notebook_stem}.ipynb"
    nbformat.write(_with_fresh_ids(nb), path)
    return path


def _question(name: str, cases: list[dict]) -> list[nbformat.NotebookNode]:
    cells = [
        nbformat.v4.new_raw_cell("# BEGIN QUESTION\n" + yaml.safe_dump({"name": name}, sort_keys=False)),
        nbformat.v4.new_markdown_cell(f"**Hidden tests of `{name}`** (run by the autograder)."),
        nbformat.v4.new_raw_cell("# BEGIN TESTS"),
    ]
    for i, case in enumerate(cases):
        config = yaml.safe_dump({"hidden": True, "points": round(case["points"], 6)}, sort_keys=False)
        body = ["pass"] if case["name"] == "" else [
            "from autograder.export.runtime import run_from_file",
            f"run_from_file(env, {PAYLOAD_FILE!r}, {case['exercise']!r}, {case['name']!r})",
        ]
        source = '""" # BEGIN TEST CONFIG\n' + config + '""" # END TEST CONFIG\n'
        source += f"def test_{_identifier(name)}_{i}(env):\n" + "".join(f"    {line}\n" for line in body)
        cells.append(nbformat.v4.new_code_cell(source))
    cells += [nbformat.v4.new_raw_cell("# END TESTS"), nbformat.v4.new_raw_cell("# END QUESTION")]
    return cells


def otter_submission(bundle: Bundle, student_notebook: Path, submission: Path, dest: Path) -> Path:
    """A submission of ours, as the same student would have handed in otter's student notebook."""
    nb = nbformat.read(student_notebook, as_version=4)
    answers = student_answers(bundle, submission)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(with_answers(nb, answers, lambda cell: cell.get("metadata", {}).get("autograder_cell")), dest)
    return dest


def read_otter_scores(results_json: Path) -> float:
    """The total score in ``otter run``'s results.json."""
    data = json.loads(results_json.read_text())
    return float(sum(t.get("score", 0.0) for t in data.get("tests", [])))


def _otter_solution_markers(source: str) -> str:
    # Otter's block markers are `# BEGIN SOLUTION` / `# END SOLUTION`; ours carry nbgrader's three hashes.
    return source.replace("### BEGIN SOLUTION", "# BEGIN SOLUTION").replace("### END SOLUTION", "# END SOLUTION")


def _with_fresh_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Our answer cells keep their id in metadata too: otter's output notebooks do not keep cell ids."""
    for index, cell in enumerate(nb.cells):
        if cell.get("id"):
            cell.metadata["autograder_cell"] = cell["id"]
        else:
            cell["id"] = f"otter-{index:03d}"
    return nb


def _identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
