"""Section 1.5.4, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, mutants and alternatives)."""

from __future__ import annotations

import pytest

from autograder.authoring.assignment import find_assignment
from autograder.build import ensure_bundle
from autograder.build.samples import reference_submission
from autograder.grade.bundle import load_bundle
from autograder.grade.runner import Grader
from autograder.layout import CourseLayout
from conftest import REPO, available_sandbox
from sections import write

LAYOUT = CourseLayout(REPO)
ASSIGNMENT = find_assignment(LAYOUT.source, "1.5.4")


@pytest.fixture(scope="module")
def grader():
    ensure_bundle(LAYOUT, ASSIGNMENT)
    return Grader(load_bundle(LAYOUT.bundles / ASSIGNMENT.id), profile="lite", sandbox=available_sandbox())


def scores(result):
    return {e.name: e.score for e in result.exercises}


def full_marks():
    return {e.name: e.points for e in ASSIGNMENT.exercises}


def explain(result):
    return "\n".join(f"{t.exercise}/{t.name}: {t.output[:600]}" for e in result.exercises for t in e.tests if not t.passed)


def test_monkeypatched_comparisons_gain_nothing(grader, tmp_path):
    attack = (
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "def compute_dimensionality(W):\n"
        "    return torch.ones(W.shape[0], W.shape[2])\n"
    )
    nb = reference_submission(ASSIGNMENT)
    next(c for c in nb.cells if c["id"] == "feature_dimensionality").source = attack
    result = grader.grade_path(write(nb, tmp_path / "attack.ipynb"))
    assert scores(result) == {**full_marks(), "feature_dimensionality": 0}, explain(result)
