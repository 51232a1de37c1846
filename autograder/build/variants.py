"""Variants of an assignment's reference solution: the tests of its hidden tests.

A section's ``variants.toml`` lists plausible-bug mutants and alternative
correct solutions as text substitutions in the reference answer cell of an
exercise. A mutant must lose that exercise's points and no others; an
alternative must get full marks. The test suite grades every one; the
benchmarks use them as a realistic batch of submissions.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import nbformat

from autograder.authoring.assignment import Assignment
from autograder.authoring.notebook import cell_exercises
from autograder.build.samples import reference_submission


@dataclass(frozen=True)
class Variant:
    kind: str  # "mutant" | "alternative"
    exercise: str
    name: str
    replace: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return f"{self.exercise}: {self.name}"


def load_variants(assignment: Assignment) -> list[Variant]:
    path = assignment.source_dir / "variants.toml"
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    return [
        Variant(kind, str(raw["exercise"]), str(raw["name"]), tuple((str(o), str(n)) for o, n in raw["replace"]))
        for kind in ("mutant", "alternative")
        for raw in data.get(kind, [])
    ]


def apply_variant(assignment: Assignment, variant: Variant) -> nbformat.NotebookNode:
    """The reference submission with ``variant``'s substitutions made in its exercise's cell."""
    nb = reference_submission(assignment)
    cells = [c for c in nb.cells if variant.exercise in cell_exercises(c)]
    assert len(cells) == 1, f"{variant.id}: expected one answer cell for {variant.exercise}, found {len(cells)}"
    cell = cells[0]
    for old, new in variant.replace:
        count = cell.source.count(old)
        assert count == 1, f"{variant.id}: {old!r} occurs {count} times in cell {cell['id']!r}, expected once"
        cell.source = cell.source.replace(old, new)
    return nb
