"""Reading instructor notebooks and the facts their cells carry.

A source notebook is a jupytext percent-format ``.py`` file (diffable, easy to
review) or an ``.ipynb``. Cells describe themselves through metadata:

* ``id="layernorm"`` — a stable cell id (required on answer cells; students'
  answers are matched to cells by it);
* ``autograder={"role": "setup"}`` — given code the grader runs before testing;
* ``autograder={"exercises": ["layernorm"]}`` — the exercises whose solution
  regions (``### BEGIN SOLUTION`` / ``### END SOLUTION``) this cell holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# jupytext bookkeeping that must not leak into release notebooks.
_JUPYTEXT_CELL_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker")


class NotebookError(ValueError):
    """The notebook breaks an authoring rule; the message names the cell."""


def read_source_notebook(path: Path) -> NotebookNode:
    """Read an instructor notebook and give every cell a stable id."""
    if path.suffix == ".py":
        import jupytext  # 0.4 s to import, so only where a .py notebook is read
        nb = jupytext.read(path, fmt="py:percent")
    else:
        nb = nbformat.read(path, as_version=4)
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        explicit = cell.metadata.pop("id", None)
        for key in _JUPYTEXT_CELL_KEYS:
            cell.metadata.pop(key, None)
        if explicit is not None:
            cell_id = str(explicit)
        elif path.suffix == ".ipynb" and cell.get("id"):
            cell_id = cell["id"]
        else:
            # Cells the grader never matches on get positional ids; stable as
            # long as the notebook is not reordered, which is all they need.
            cell_id = f"cell-{index:03d}"
        if not _VALID_ID.match(cell_id):
            raise NotebookError(f"{path}: cell {index} has an invalid id {cell_id!r} (letters, digits, - and _)")
        if cell_id in seen:
            raise NotebookError(f"{path}: two cells have the id {cell_id!r}")
        seen.add(cell_id)
        cell["id"] = cell_id
        if is_answer_cell(cell) and explicit is None and path.suffix == ".py":
            raise NotebookError(
                f"{path}: the answer cell at position {index} needs an explicit id, "
                f'e.g. `# %% id="my_exercise" autograder={{"exercises": ["my_exercise"]}}`'
            )
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def autograder_meta(cell: NotebookNode) -> dict:
    meta = cell.get("metadata", {}).get("autograder", {})
    return meta if isinstance(meta, dict) else {}


def is_answer_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and BEGIN_SOLUTION in cell.source


def is_setup_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and autograder_meta(cell).get("role") == "setup"


def cell_exercises(cell: NotebookNode) -> list[str]:
    meta = autograder_meta(cell)
    names = meta.get("exercises", [])
    if "exercise" in meta:
        names = [meta["exercise"], *names]
    return [str(n) for n in names]


def grading_cells(nb: NotebookNode) -> list[NotebookNode]:
    """The cells the grader runs, in notebook order: setup and answer cells."""
    return [c for c in nb.cells if is_setup_cell(c) or is_answer_cell(c)]


def solution_regions(source: str) -> list[list[str]]:
    """The lines inside each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region."""
    regions, current = [], None
    for line in source.split("\n"):
        if BEGIN_SOLUTION in line:
            current = []
        elif END_SOLUTION in line:
            if current is not None:
                regions.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return regions
