"""1.2's public checks, run the way a student runs them: in the notebook's own namespace.

The reference solution passes every check; the blank release passes none.
"""

from __future__ import annotations

import sys

import pytest

from autograder.authoring.assignment import find_assignment
from autograder.authoring.notebook import grading_cells
from autograder.build.samples import blank_submission, reference_submission
from conftest import REPO

ASSIGNMENT = find_assignment(REPO / "source", "1.2")
RELEASE = REPO / "release" / ASSIGNMENT.id


@pytest.fixture(scope="module")
def public_tests(monkeypatch_module):
    monkeypatch_module.syspath_prepend(str(RELEASE))
    monkeypatch_module.chdir(RELEASE)
    monkeypatch_module.setenv("AUTOGRADER_PROFILE", "lite")
    for name in ("public_tests", "mi_helpers"):
        sys.modules.pop(name, None)
    import public_tests

    return public_tests


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def notebook_namespace(nb) -> dict:
    """What a student's kernel holds after running the setup and answer cells."""
    namespace: dict = {"__name__": "__main__"}
    for cell in grading_cells(nb):
        exec(compile(cell.source, f"<cell {cell['id']}>", "exec"), namespace)
    return namespace


def run_check(public_tests, name: str, namespace: dict) -> str | None:
    """None when the check passes, else what it reported."""
    try:
        public_tests.CHECKS[name](namespace)
    except (NotImplementedError, public_tests.CheckFailed, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_every_exercise_has_a_public_check(public_tests):
    assert sorted(public_tests.CHECKS) == sorted(e.name for e in ASSIGNMENT.exercises)


@pytest.mark.slow
def test_reference_passes_and_blank_fails_every_public_check(public_tests):
    reference = notebook_namespace(reference_submission(ASSIGNMENT))
    blank = notebook_namespace(blank_submission(ASSIGNMENT))
    failures = {name: run_check(public_tests, name, reference) for name in public_tests.CHECKS}
    assert {k: v for k, v in failures.items() if v} == {}
    passing_blank = [name for name in public_tests.CHECKS if run_check(public_tests, name, blank) is None]
    assert passing_blank == []
