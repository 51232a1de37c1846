"""What both exports share: the instructor notebook as other tools see it, and students' answers moved across."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from autograder.authoring.assignment import Assignment
from autograder.authoring.notebook import is_answer_cell, read_source_notebook
from autograder.build.preprocessors import INSTRUCTOR_ONLY_TAG
from autograder.grade.bundle import Bundle
from autograder.grade.submission import build_program, read_submission


def instructor_notebook(assignment: Assignment) -> nbformat.NotebookNode:
    """The source notebook, solutions included, without instructor-only cells."""
    nb = read_source_notebook(assignment.source_dir / assignment.notebook)
    nb.cells = [c for c in nb.cells if INSTRUCTOR_ONLY_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def copy_support_files(bundle: Bundle, dest: Path) -> list[str]:
    """The files students get next to the notebook (helpers, public checks, lite assets)."""
    copied = []
    for path in bundle.support_files():
        rel = path.relative_to(bundle.student_dir)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(rel.as_posix())
    return copied


def student_answers(bundle: Bundle, submission_path: Path) -> dict[str, str]:
    """A submission's answer cells by cell id, matched the way the grader matches them."""
    program = build_program(
        bundle.release_notebook(), bundle.manifest["setup_cells"], bundle.answer_cell_ids(),
        read_submission(submission_path),
    )
    return dict(program.answers)


def with_answers(release_nb: nbformat.NotebookNode, answers: dict[str, str], cell_key) -> nbformat.NotebookNode:
    """A copy of another tool's student notebook with the answer cells replaced by ``answers``.

    ``cell_key(cell)`` names the answer cell a release cell stands for (``None`` for other cells).
    """
    nb = nbformat.from_dict(release_nb)
    for cell in nb.cells:
        key = cell_key(cell)
        if key is not None and key in answers:
            cell.source = answers[key]
    return nb


def answer_cell_ids(nb: nbformat.NotebookNode) -> set[str]:
    return {c["id"] for c in nb.cells if is_answer_cell(c)}
