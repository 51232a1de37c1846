"""Every course section, checked the same way (SECTION_DONE.md, points 5–8):

* the reference gets 100 through the CLI, cold, in at most 60 s;
* the blank release gets only the section's free points;
* every exercise has at least two mutants and one alternative;
* every mutant loses points in its own exercise and no other;
* every alternative gets full marks.

Section-specific checks (the lite model shows the phenomenon, the public
checks, ...) live in ``test_section_<id>.py``; the public checks in ``test_public_checks.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from autograder.authoring.assignment import discover_assignments
from autograder.build import ensure_bundle
from autograder.build.samples import blank_submission, reference_submission
from autograder.grade.bundle import load_bundle
from autograder.grade.executors import GraderSpec, make_executor
from autograder.grade.runner import Grader
from autograder.layout import CourseLayout
from conftest import REPO, available_sandbox
from sections import apply_variant, load_variants, write

LAYOUT = CourseLayout(REPO)
ASSIGNMENTS = discover_assignments(LAYOUT.source)
VARIANTS = [(a, v) for a in ASSIGNMENTS for v in load_variants(a)]
COLD_START_LIMIT_S = 60


def short(assignment) -> str:
    return assignment.id.split("_", 1)[0]


class _Graders:
    """One warm grader at a time (the tests run grouped by assignment), and each
    assignment's variants graded once, as one batch on two worker processes."""

    def __init__(self):
        self.current = None
        self.variant_results: dict[str, dict | Exception] = {}

    def variant_result(self, assignment, variant, folder):
        if assignment.id not in self.variant_results:
            ensure_bundle(LAYOUT, assignment)
            variants = load_variants(assignment)
            paths = [write(apply_variant(assignment, v), folder / f"variant_{i:03d}.ipynb") for i, v in enumerate(variants)]
            spec = GraderSpec(LAYOUT.bundles / assignment.id, profile="lite", sandbox=available_sandbox())
            executor = make_executor(spec, "local", jobs=2)
            try:
                by_name = {r.submission: r for r in executor.grade(paths)}
                self.variant_results[assignment.id] = {v.id: by_name[f"variant_{i:03d}"] for i, v in enumerate(variants)}
            except Exception as exc:  # every variant test of this assignment fails with it, none regrades
                self.variant_results[assignment.id] = exc
            finally:
                executor.close()
        results = self.variant_results[assignment.id]
        if isinstance(results, Exception):
            raise RuntimeError(f"grading the variants of {assignment.id} failed") from results
        return results[variant.id]

    def get(self, assignment) -> Grader:
        if self.current is None or self.current.bundle.assignment != assignment.id:
            self.close()
            ensure_bundle(LAYOUT, assignment)
            self.current = Grader(load_bundle(LAYOUT.bundles / assignment.id), profile="lite",
                                  sandbox=available_sandbox())
        return self.current

    def close(self):
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(scope="module")
def graders():
    pool = _Graders()
    yield pool
    pool.close()


def scores(result):
    return {e.name: e.score for e in result.exercises}


def full_marks(assignment):
    return {e.name: e.points for e in assignment.exercises}


def explain(result):
    return "\n".join(f"{t.exercise}/{t.name}: {t.output[:600]}" for e in result.exercises for t in e.tests if not t.passed)


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=short)
def test_every_exercise_has_two_mutants_and_an_alternative(assignment):
    variants = load_variants(assignment)
    for exercise in assignment.exercises:
        assert sum(v.kind == "mutant" and v.exercise == exercise.name for v in variants) >= 2, exercise.name
        assert sum(v.kind == "alternative" and v.exercise == exercise.name for v in variants) >= 1, exercise.name
    assert {v.exercise for v in variants} <= set(full_marks(assignment)), "a variant names an unknown exercise"


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=short)
def test_points_sum_to_100(assignment):
    assert sum(full_marks(assignment).values()) + assignment.free_points == 100


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=short)
def test_reference_full_marks_from_a_cold_start(assignment, tmp_path):
    """The CLI on this machine's CPUs, model loading included."""
    ensure_bundle(LAYOUT, assignment)
    path = write(reference_submission(assignment), tmp_path / "reference.ipynb")
    command = [sys.executable, "-m", "autograder", "--root", str(REPO), "grade", short(assignment), str(path),
               "--out", str(tmp_path / "out"), "--db", str(tmp_path / "book.sqlite")]
    if available_sandbox() == "none":
        command.append("--no-sandbox")
    started = time.monotonic()
    subprocess.run(command, check=True, env={**os.environ, "AUTOGRADER_PROFILE": "lite"}, capture_output=True)
    elapsed = time.monotonic() - started
    results = json.loads((tmp_path / "out" / "reference" / "results.json").read_text())
    failing = [t for t in results["tests"] if t["status"] != "passed"]
    assert results["score"] == results["max_score"] == 100, failing
    assert elapsed <= COLD_START_LIMIT_S, f"grading took {elapsed:.1f} s"


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=short)
def test_blank_release_scores_only_free_points(assignment, graders, tmp_path):
    result = graders.get(assignment).grade_path(write(blank_submission(assignment), tmp_path / "blank.ipynb"))
    assert result.score == assignment.free_points, scores(result)


@pytest.mark.slow
@pytest.mark.parametrize("assignment, variant", [p for p in VARIANTS if p[1].kind == "mutant"],
                         ids=[f"{short(a)} {v.id}" for a, v in VARIANTS if v.kind == "mutant"])
def test_mutant_loses_only_its_exercise(assignment, variant, graders, tmp_path_factory):
    result = graders.variant_result(assignment, variant, tmp_path_factory.mktemp("variants"))
    got, expected = scores(result), full_marks(assignment)
    others = {k: v for k, v in got.items() if k != variant.exercise}
    assert others == {k: v for k, v in expected.items() if k != variant.exercise}, explain(result)
    assert got[variant.exercise] < expected[variant.exercise], "the mutant was not caught"


@pytest.mark.slow
@pytest.mark.parametrize("assignment, variant", [p for p in VARIANTS if p[1].kind == "alternative"],
                         ids=[f"{short(a)} {v.id}" for a, v in VARIANTS if v.kind == "alternative"])
def test_alternative_gets_full_marks(assignment, variant, graders, tmp_path_factory):
    result = graders.variant_result(assignment, variant, tmp_path_factory.mktemp("variants"))
    assert scores(result) == full_marks(assignment), explain(result)
