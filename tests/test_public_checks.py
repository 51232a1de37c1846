"""Every section's public checks, run the way a student runs them: in the notebook's own namespace.

The reference solution passes every check; the blank release passes none.
"""

from __future__ import annotations

import linecache
import sys

import pytest
import torch

from autograder.authoring.assignment import discover_assignments
from autograder.authoring.notebook import grading_cells
from autograder.build.samples import blank_submission, reference_submission
from conftest import REPO

ASSIGNMENTS = [a for a in discover_assignments(REPO / "source") if (REPO / "release" / a.id / "public_tests.py").exists()]


def short(assignment) -> str:
    return assignment.id.split("_", 1)[0]


@pytest.fixture(params=ASSIGNMENTS, ids=short)
def section(request):
    """(assignment, its public_tests module), imported from its release folder as a student would."""
    assignment = request.param
    release = REPO / "release" / assignment.id
    grad_mode = torch.is_grad_enabled()  # notebook code may switch it off for itself
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(release))
        mp.chdir(release)
        mp.setenv("AUTOGRADER_PROFILE", "lite")
        # Every section has its own public_tests and helpers modules: never reuse another's.
        for path in release.glob("*.py"):
            sys.modules.pop(path.stem, None)
        import public_tests

        yield assignment, public_tests
        for path in release.glob("*.py"):
            sys.modules.pop(path.stem, None)
    torch.set_grad_enabled(grad_mode)


def notebook_namespace(nb) -> dict:
    """What a student's kernel holds after running the setup and answer cells."""
    namespace: dict = {"__name__": "__main__"}
    for cell in grading_cells(nb):
        filename = f"<cell {cell['id']}>"
        # as the grading worker does: nnsight reads a `with model.trace(...)` block back through linecache
        linecache.cache[filename] = (len(cell.source), None, cell.source.splitlines(True), filename)
        exec(compile(cell.source, filename, "exec"), namespace)
    return namespace


def run_check(public_tests, name: str, namespace: dict) -> str | None:
    """None when the check passes, else what it reported."""
    try:
        public_tests.CHECKS.run(name, namespace)
    except (NotImplementedError, public_tests.CheckFailed, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_every_exercise_has_a_public_check(section):
    assignment, public_tests = section
    assert sorted(public_tests.CHECKS) == sorted(e.name for e in assignment.exercises)


@pytest.mark.slow
def test_reference_passes_and_blank_fails_every_public_check(section):
    assignment, public_tests = section
    reference = notebook_namespace(reference_submission(assignment))
    blank = notebook_namespace(blank_submission(assignment))
    failures = {name: run_check(public_tests, name, reference) for name in public_tests.CHECKS}
    assert {k: v for k, v in failures.items() if v} == {}
    passing_blank = [name for name in public_tests.CHECKS if run_check(public_tests, name, blank) is None]
    assert passing_blank == []
