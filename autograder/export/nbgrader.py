"""``autograder export nbgrader``: the assignment as an nbgrader course.

Writes ``DIR/nbgrader_config.py`` and ``DIR/source/<assignment>/`` (the
notebook with nbgrader cell metadata, and the support files), ready for
``nbgrader generate_assignment`` and ``nbgrader autograde``:

* answer cells become nbgrader "autograded answer" cells (same
  ``### BEGIN SOLUTION`` regions, ``grade_id`` = our cell id);
* setup cells become read-only cells;
* each hidden test case becomes an "autograder tests" cell worth its points,
  at the end of the notebook, inside ``### BEGIN HIDDEN TESTS``; the first one
  also carries the reference solution and the hidden tests (compressed), so
  nothing secret is released.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.authoring.assignment import Assignment
from autograder.authoring.notebook import is_answer_cell, is_setup_cell
from autograder.export.notebook import copy_support_files, instructor_notebook, student_answers, with_answers
from autograder.export.payload import encode_payload, hidden_payload, payload_id
from autograder.grade.bundle import Bundle

SCHEMA_VERSION = 3


def export_nbgrader(assignment: Assignment, bundle: Bundle, out: Path, course_id: str = "course") -> Path:
    """Write the nbgrader course; returns the source notebook's path."""
    source_dir = out / "source" / assignment.id
    source_dir.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(
        "# Written by `autograder export nbgrader`.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course_id!r}\n"
        # The autograder's own budget is per test case; give nbgrader's per-cell timeout the same room.
        f"c.ExecutePreprocessor.timeout = {int(bundle.limits.test_timeout_s * 4)}\n"
    )
    copy_support_files(bundle, source_dir)
    nb = instructor_notebook(assignment)
    for cell in nb.cells:
        if is_answer_cell(cell):
            cell.metadata["nbgrader"] = _meta(cell["id"], solution=True)
        elif is_setup_cell(cell):
            cell.metadata["nbgrader"] = _meta(cell["id"], locked=True)
    nb.cells += test_cells(hidden_payload(bundle))
    path = source_dir / f"{assignment.notebook_stem}.ipynb"
    nbformat.write(nb, path)
    return path


def test_cells(payload: dict) -> list[nbformat.NotebookNode]:
    key = payload_id(payload)
    cells = [nbformat.v4.new_markdown_cell(
        "## Hidden tests\n\nThe cells below grade your work after you submit; their contents are hidden.",
        id="autograder-hidden-tests",
    )]
    cases = list(payload["cases"])
    if payload["free_points"]:
        cases.append({"exercise": "free points", "name": "", "points": payload["free_points"]})
    for i, case in enumerate(cases):
        lines = [f"# Hidden test: {case['exercise']}, {case['name']} ({case['points']:g} points)".replace(", (", " ("),
                 "### BEGIN HIDDEN TESTS", "from autograder.export import runtime as _autograder_runtime"]
        if i == 0:
            lines += ["_autograder_runtime.load_session('''", encode_payload(payload), "''', globals())"]
        if case["exercise"] != "free points":
            lines.append(f"_autograder_runtime.run({key!r}, {case['exercise']!r}, {case['name']!r})")
        lines.append("### END HIDDEN TESTS")
        cell = nbformat.v4.new_code_cell("\n".join(lines), id=f"autograder-test-{i:03d}")
        cell.metadata["nbgrader"] = _meta(f"test_{i:03d}_{case['exercise']}", grade=True, locked=True,
                                          points=round(case["points"], 6))
        cells.append(cell)
    return cells


def nbgrader_submission(bundle: Bundle, release_notebook: Path, submission: Path, dest: Path) -> Path:
    """A submission of ours, as the same student would have handed in nbgrader's release of it."""
    release_nb = nbformat.read(release_notebook, as_version=4)
    answers = student_answers(bundle, submission)

    def key(cell):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        return meta.get("grade_id") if meta.get("solution") else None

    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(with_answers(release_nb, answers, key), dest)
    return dest


def read_nbgrader_scores(db_path: Path, assignment_id: str) -> dict[str, float]:
    """Total auto score per student, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db_path}") as gb:
        return {
            s.student.id: float(s.score)
            for s in gb.find_assignment(assignment_id).submissions
        }


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta
