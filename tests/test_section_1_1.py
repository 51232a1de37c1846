"""Section 1.1: the reference gets full marks, the blank release none, and the
hidden tests tell every plausible bug from every correct alternative."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from autograder.authoring.assignment import find_assignment
from autograder.build import ensure_bundle
from autograder.build.samples import blank_submission, reference_submission
from autograder.grade.bundle import load_bundle
from autograder.grade.runner import Grader
from autograder.layout import CourseLayout
from conftest import REPO, available_sandbox
from sections import apply_variant, load_variants, write

LAYOUT = CourseLayout(REPO)
ASSIGNMENT = find_assignment(LAYOUT.source, "1.1")
VARIANTS = load_variants(ASSIGNMENT)
MUTANTS = [v for v in VARIANTS if v.kind == "mutant"]
ALTERNATIVES = [v for v in VARIANTS if v.kind == "alternative"]


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


def test_every_exercise_has_two_mutants_and_an_alternative():
    for exercise in ASSIGNMENT.exercises:
        assert sum(v.exercise == exercise.name for v in MUTANTS) >= 2, exercise.name
        assert sum(v.exercise == exercise.name for v in ALTERNATIVES) >= 1, exercise.name


def test_reference_full_marks_within_60s_from_a_cold_start(tmp_path):
    """The CLI, model loading included, on this machine's CPUs."""
    ensure_bundle(LAYOUT, ASSIGNMENT)
    path = write(reference_submission(ASSIGNMENT), tmp_path / "reference.ipynb")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "autograder", "--root", str(REPO), "grade", "1.1", str(path),
         "--out", str(tmp_path / "out"), "--db", str(tmp_path / "book.sqlite")],
        check=True, env={**os.environ, "AUTOGRADER_PROFILE": "lite"}, capture_output=True,
    )
    elapsed = time.monotonic() - started
    results = json.loads((tmp_path / "out" / "reference" / "results.json").read_text())
    failing = [t for t in results["tests"] if t["status"] != "passed"]
    assert results["score"] == results["max_score"] == 100, failing
    assert elapsed <= 60, f"grading took {elapsed:.1f} s"


def test_blank_release_scores_zero(grader, tmp_path):
    result = grader.grade_path(write(blank_submission(ASSIGNMENT), tmp_path / "blank.ipynb"))
    assert result.score == 0, scores(result)


def test_monkeypatched_comparisons_gain_nothing(grader, tmp_path):
    attack = (
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "class LayerNorm(torch.nn.Module):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__()\n"
        "        self.w = torch.nn.Parameter(torch.ones(cfg.d_model))\n"
        "        self.b = torch.nn.Parameter(torch.zeros(cfg.d_model))\n"
        "    def forward(self, residual):\n"
        "        return residual\n"
    )
    nb = reference_submission(ASSIGNMENT)
    next(c for c in nb.cells if c["id"] == "layernorm").source = attack
    result = grader.grade_path(write(nb, tmp_path / "attack.ipynb"))
    assert scores(result) == {**full_marks(), "layernorm": 0}, explain(result)


@pytest.mark.slow
@pytest.mark.parametrize("variant", MUTANTS, ids=lambda v: v.id)
def test_mutant_loses_only_its_exercise(grader, tmp_path, variant):
    result = grader.grade_path(write(apply_variant(ASSIGNMENT, variant), tmp_path / "mutant.ipynb"))
    got = scores(result)
    others = {k: v for k, v in got.items() if k != variant.exercise}
    assert others == {k: v for k, v in full_marks().items() if k != variant.exercise}, explain(result)
    assert got[variant.exercise] < full_marks()[variant.exercise], "the mutant was not caught"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.id)
def test_alternative_gets_full_marks(grader, tmp_path, variant):
    result = grader.grade_path(write(apply_variant(ASSIGNMENT, variant), tmp_path / "alternative.ipynb"))
    assert scores(result) == full_marks(), explain(result)
