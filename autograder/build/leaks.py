"""Finding solution lines in released files.

A *long* solution line (12+ characters once stripped) is a leak wherever it
appears in the release, inside another line included: a hint in prose, a
public test that computes the answer the same way. The only exception is a line
the instructor also wrote as given code, outside any solution region.

A *short* line (``return x``, ``else:``) says little on its own and appears in
plenty of unrelated code, so it counts only as a whole line of the release
notebook that the source notebook has nowhere outside a solution region.
"""

from __future__ import annotations

import json

from nbformat import NotebookNode

from autograder.authoring.notebook import BEGIN_SOLUTION, END_SOLUTION, solution_regions

LONG_LINE = 12


class LeakError(ValueError):
    """A solution line would reach students; the message names it and where."""


def find_leaks(source_nb: NotebookNode, release_files: dict[str, bytes]) -> list[str]:
    """One message per solution line found under the release, naming the file."""
    solution_lines = {
        line.strip()
        for cell in source_nb.cells
        if cell.cell_type == "code"
        for region in solution_regions(cell.source)
        for line in region
        if line.strip() and not line.strip().startswith("#")
    }
    given_code = _lines_outside_regions(c.source for c in source_nb.cells if c.cell_type == "code")
    given_anywhere = given_code | _lines_outside_regions(c.source for c in source_nb.cells if c.cell_type != "code")

    leaks = []
    for rel, data in sorted(release_files.items()):
        text = _text_of(rel, data)
        if text is None:
            continue
        whole_lines = {line.strip() for line in text.split("\n")}
        for line in sorted(solution_lines):
            if len(line) >= LONG_LINE:
                leaked = line in text and line not in given_code
            else:
                leaked = rel.endswith(".ipynb") and line in whole_lines and line not in given_anywhere
            if leaked:
                leaks.append(f"{rel}: contains the solution line {line!r}")
    return leaks


def _lines_outside_regions(sources) -> set[str]:
    lines: set[str] = set()
    for source in sources:
        inside = False
        for line in source.split("\n"):
            if BEGIN_SOLUTION in line:
                inside = True
            elif END_SOLUTION in line:
                inside = False
            elif not inside:
                lines.add(line.strip())
    return lines


def _text_of(rel: str, data: bytes) -> str | None:
    """The text a student would read: cell sources for notebooks, the file for text, nothing for binaries."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if rel.endswith(".ipynb"):
        nb = json.loads(text)
        return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", []))
    return text
