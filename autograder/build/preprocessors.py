"""The build as a pipeline of small notebook transforms (nbconvert preprocessors).

Our own transforms only do what nbgrader does not: drop instructor-only cells,
give answer and setup cells nbgrader's metadata, and normalise the notebook so
a rebuild is byte-identical. Clearing solutions and outputs and computing
checksums are nbgrader's own ``ClearSolutions``, ``ClearOutput`` and
``ComputeChecksums``.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader.preprocessors import ClearOutput, ClearSolutions, ComputeChecksums

from autograder.authoring.notebook import is_answer_cell, is_setup_cell

INSTRUCTOR_ONLY_TAG = "instructor-only"
NBGRADER_SCHEMA_VERSION = 3


class DropInstructorCells(Preprocessor):
    """Remove cells tagged ``instructor-only`` (notes, solution walkthroughs)."""

    def preprocess(self, nb: NotebookNode, resources: dict):
        nb.cells = [c for c in nb.cells if INSTRUCTOR_ONLY_TAG not in c.get("metadata", {}).get("tags", [])]
        return nb, resources


class MarkGradedCells(Preprocessor):
    """Give answer cells (solution, unlocked) and setup cells (locked) nbgrader metadata.

    The cell id doubles as nbgrader's ``grade_id``, so a submission saved by a
    tool that drops cell ids can still be matched.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int):
        if is_answer_cell(cell):
            solution, locked = True, False
        elif is_setup_cell(cell):
            solution, locked = False, True
        else:
            return cell, resources
        cell.metadata["nbgrader"] = {
            "grade": False,
            "grade_id": cell["id"],
            "locked": locked,
            "schema_version": NBGRADER_SCHEMA_VERSION,
            "solution": solution,
        }
        return cell, resources


class NormaliseForRelease(Preprocessor):
    """Fixed notebook metadata, no execution state: the same source gives the same bytes."""

    def preprocess(self, nb: NotebookNode, resources: dict):
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        nb.nbformat, nb.nbformat_minor = 4, 5
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.execution_count = None
                cell.outputs = []
            if "attachments" in cell and not cell.attachments:
                del cell["attachments"]
        return nb, resources


def release_pipeline() -> list[Preprocessor]:
    """Instructor notebook → student notebook."""
    return [
        DropInstructorCells(),
        MarkGradedCells(),
        ClearSolutions(),
        ClearOutput(),
        ComputeChecksums(),
        NormaliseForRelease(),
    ]


def reference_pipeline() -> list[Preprocessor]:
    """Instructor notebook → a release-shaped notebook with the solutions in place (a sample submission)."""
    return [DropInstructorCells(), MarkGradedCells(), ClearOutput(), NormaliseForRelease()]


def run_pipeline(nb: NotebookNode, pipeline: list[Preprocessor]) -> NotebookNode:
    resources: dict = {}
    for preprocessor in pipeline:
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb
