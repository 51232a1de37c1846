"""Sample submissions made from the instructor notebook: reference, partial and blank.

They feed ``make demo`` and the tests: the reference must score full marks,
the blank release zero, and the partial one somewhere in between.
"""

from __future__ import annotations

import copy

import nbformat
from nbformat import NotebookNode

from autograder.authoring.assignment import Assignment
from autograder.authoring.notebook import is_answer_cell, read_source_notebook
from autograder.build.preprocessors import reference_pipeline, release_pipeline, run_pipeline


def reference_submission(assignment: Assignment) -> NotebookNode:
    """The release notebook with every answer cell holding the instructor's solution."""
    return run_pipeline(_source(assignment), reference_pipeline())


def blank_submission(assignment: Assignment) -> NotebookNode:
    """The release notebook, untouched: what a student who did nothing hands in."""
    return run_pipeline(_source(assignment), release_pipeline())


def partial_submission(assignment: Assignment) -> NotebookNode:
    """The first half of the answer cells solved (at least one), the rest blank."""
    reference, blank = reference_submission(assignment), blank_submission(assignment)
    answer_ids = [c["id"] for c in reference.cells if is_answer_cell(c)]
    solved = set(answer_ids[: max(1, len(answer_ids) // 2)])
    solutions = {c["id"]: c.source for c in reference.cells}
    for cell in blank.cells:
        if cell["id"] in solved:
            cell.source = solutions[cell["id"]]
    return blank


def with_cell_source(nb: NotebookNode, cell_id: str, source: str) -> NotebookNode:
    """A copy of ``nb`` whose cell ``cell_id`` holds ``source``."""
    changed = copy.deepcopy(nb)
    matches = [c for c in changed.cells if c.get("id") == cell_id]
    if not matches:
        raise KeyError(f"no cell with id {cell_id!r}")
    matches[0].source = source
    return changed


def sample_submissions(assignment: Assignment) -> dict[str, bytes]:
    """File name → notebook bytes, for ``autograder samples``."""
    makers = {"reference": reference_submission, "partial": partial_submission, "blank": blank_submission}
    return {f"{name}.ipynb": (nbformat.writes(make(assignment)) + "\n").encode() for name, make in makers.items()}


def _source(assignment: Assignment) -> NotebookNode:
    return read_source_notebook(assignment.source_dir / assignment.notebook)
