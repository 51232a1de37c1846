"""Reading what students hand in, and rebuilding the program to grade.

The program is the *trusted* release notebook with each answer cell replaced by
the student's version of it. Setup cells always come from the release, so edits
to them change nothing; cells a student deleted are graded as blank; extra or
reordered cells are ignored.

Answer cells are matched by cell id; failing that (a jupytext ``.py`` file, a
notebook saved by an old tool) by the nbgrader ``grade_id`` kept in the cell's
metadata; failing that by the names the cell defines (``class LayerNorm``).
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

SUBMISSION_SUFFIXES = (".ipynb", ".py")
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024


class SubmissionError(ValueError):
    """The file cannot be read as a notebook; the message tells the student what to do."""


@dataclass(frozen=True)
class StudentCell:
    id: str | None
    grade_id: str | None
    source: str


@dataclass(frozen=True)
class Submission:
    name: str
    path: Path
    sha256: str
    cells: tuple[StudentCell, ...]


def find_submissions(paths: list[Path]) -> list[Path]:
    """Expand directories into the notebook files they contain, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.suffix in SUBMISSION_SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such submission: {path}")
    return found


def submission_name(path: Path) -> str:
    return path.stem


def read_submission(path: Path) -> Submission:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_SUBMISSION_BYTES:
        raise SubmissionError(
            f"{path.name} is {len(data) / 1e6:.0f} MB; the limit is {MAX_SUBMISSION_BYTES / 1e6:.0f} MB. "
            "Clear the outputs (Kernel → Restart & Clear Output) and submit again."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path.name} is not UTF-8 text ({exc}); save it again from Jupyter.") from exc
    if path.suffix == ".py":
        try:
            import jupytext  # 0.4 s to import, so only where a .py notebook is read
            nb = jupytext.reads(text, fmt="py:percent")
        except Exception as exc:  # jupytext raises many kinds
            raise SubmissionError(f"{path.name} is not a jupytext percent-format script: {exc}") from exc
    else:
        try:
            nb = nbformat.reads(text, as_version=4)
        except Exception as exc:  # malformed JSON, unknown nbformat, ...
            raise SubmissionError(
                f"{path.name} is not a valid Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]}). "
                "Open it in Jupyter, check it loads, save it and submit again."
            ) from exc
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        meta = cell.get("metadata", {}) or {}
        nbgrader_meta = meta.get("nbgrader", {}) if isinstance(meta.get("nbgrader", {}), dict) else {}
        grade_id = nbgrader_meta.get("grade_id") or meta.get("id")
        cells.append(StudentCell(cell.get("id"), str(grade_id) if grade_id else None, str(source)))
    return Submission(submission_name(path), path, digest, tuple(cells))


_DEF = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)


def defined_names(source: str) -> set[str]:
    """Top-level functions and classes a cell defines (tolerant of syntax errors)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(_DEF.findall(source))
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


@dataclass
class Program:
    """The cells to run, in order, and what happened while matching them."""

    cells: list[tuple[str, str]]
    answers: dict[str, str]  # answer cell id -> source actually used
    notes: dict[str, str] = field(default_factory=dict)  # answer cell id -> note for the student


def build_program(release_nb: nbformat.NotebookNode, setup_ids: list[str], answer_ids: list[str], submission: Submission) -> Program:
    by_id = {c.id: c for c in submission.cells if c.id}
    by_grade_id = {c.grade_id: c for c in submission.cells if c.grade_id}
    used: set[int] = set()
    program = Program(cells=[], answers={})
    release_cells = {c["id"]: c for c in release_nb.cells}
    for cell in release_nb.cells:
        cid = cell["id"]
        if cid in setup_ids:
            program.cells.append((cid, cell.source))
        elif cid in answer_ids:
            match = by_id.get(cid) or by_grade_id.get(cid)
            if match is None:
                match = _match_by_definitions(release_cells[cid].source, submission.cells, used)
                if match is not None:
                    program.notes[cid] = "matched to your cell by the names it defines"
            if match is None:
                program.notes[cid] = (
                    f"the answer cell {cid!r} was not found in your submission, so it was graded as blank; "
                    "did you delete it or change its metadata?"
                )
                source = cell.source
            else:
                used.add(id(match))
                source = match.source
            program.answers[cid] = source
            program.cells.append((cid, source))
    return program


def _match_by_definitions(release_source: str, cells: tuple[StudentCell, ...], used: set[int]) -> StudentCell | None:
    wanted = defined_names(release_source)
    if not wanted:
        return None
    best, best_overlap = None, 0
    for cell in cells:
        if id(cell) in used:
            continue
        overlap = len(wanted & defined_names(cell.source))
        if overlap > best_overlap:
            best, best_overlap = cell, overlap
    return best


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()
