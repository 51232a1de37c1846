"""Every course section, checked the same way (SECTION_DONE.md, points 5–8):

* the reference gets 100 through the CLI, cold, in at most 60 s;
* the blank release gets only the section's free points;
* every exercise has at least two mutants and one alternative;
* every mutant loses points in its own exercise and no other;
* every alternative gets full marks.

Each exercise's first two mutants and first alternative (variants.toml's order: the SECTION_DONE minimum)
are graded by every run; the rest only with ``--all-variants`` (``make test-all``), which keeps the
default suite inside its 30-minute budget on 2 cores.

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
from autograder.grade.executors import GraderSpec, make_executor
from conftest import REPO, available_sandbox
from sections import LAYOUT, apply_variant, explain, full_marks, load_variants, required_variants, scores, write

ASSIGNMENTS = discover_assignments(LAYOUT.source)
VARIANTS = [(a, v) for a in ASSIGNMENTS for v in load_variants(a)]
COLD_START_LIMIT_S = 60


def short(assignment) -> str:
    return assignment.id.split("_", 1)[0]


BLANK = "blank release"


class _Batches:
    """Each assignment's submissions graded once, as batches on two warm worker processes: the blank
    release with the required variants (one boot per section), the extra variants on request."""

    def __init__(self, folder):
        self.folder = folder
        self.results: dict[tuple[str, bool], dict | Exception] = {}

    def result(self, assignment, name: str, extra: bool = False):
        key = (assignment.id, extra)
        if key not in self.results:
            self.results[key] = self._grade(assignment, extra)
        results = self.results[key]
        if isinstance(results, Exception):
            raise RuntimeError(f"grading the submissions of {assignment.id} failed") from results
        return results[name]

    def _grade(self, assignment, extra: bool) -> dict | Exception:
        ensure_bundle(LAYOUT, assignment)
        required = required_variants(load_variants(assignment))
        variants = [v for v in load_variants(assignment) if (v not in required) == extra]
        notebooks = {v.id: apply_variant(assignment, v) for v in variants}
        if not extra:
            notebooks[BLANK] = blank_submission(assignment)
        folder = self.folder / f"{short(assignment)}{'-extra' if extra else ''}"
        folder.mkdir()
        paths = {write(nb, folder / f"submission_{i:03d}.ipynb"): name for i, (name, nb) in enumerate(notebooks.items())}
        spec = GraderSpec(LAYOUT.bundles / assignment.id, profile="lite", sandbox=available_sandbox())
        executor = make_executor(spec, "local", jobs=2)
        try:
            by_stem = {r.submission: r for r in executor.grade(list(paths))}
            return {name: by_stem[path.stem] for path, name in paths.items()}
        except Exception as exc:  # every test of this batch fails with it, none regrades
            return exc
        finally:
            executor.close()


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return _Batches(tmp_path_factory.mktemp("sections"))


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
def test_blank_release_scores_only_free_points(assignment, batches):
    result = batches.result(assignment, BLANK)
    assert result.score == assignment.free_points, scores(result)


def variant_params(kind: str) -> list:
    """(assignment, variant) pairs of one kind; those beyond each exercise's required ones marked extra."""
    required = {a.id: required_variants(load_variants(a)) for a in ASSIGNMENTS}
    return [
        pytest.param(a, v, id=f"{short(a)} {v.id}",
                     marks=[] if v in required[a.id] else [pytest.mark.extra_variant])
        for a, v in VARIANTS if v.kind == kind
    ]


def graded(batches, assignment, variant):
    extra = variant not in required_variants(load_variants(assignment))
    return batches.result(assignment, variant.id, extra=extra)


@pytest.mark.slow
@pytest.mark.parametrize("assignment, variant", variant_params("mutant"))
def test_mutant_loses_only_its_exercise(assignment, variant, batches):
    result = graded(batches, assignment, variant)
    got, expected = scores(result), full_marks(assignment)
    others = {k: v for k, v in got.items() if k != variant.exercise}
    assert others == {k: v for k, v in expected.items() if k != variant.exercise}, explain(result)
    assert got[variant.exercise] < expected[variant.exercise], "the mutant was not caught"


@pytest.mark.slow
@pytest.mark.parametrize("assignment, variant", variant_params("alternative"))
def test_alternative_gets_full_marks(assignment, variant, batches):
    result = graded(batches, assignment, variant)
    assert scores(result) == full_marks(assignment), explain(result)
