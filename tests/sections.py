"""Helpers for the tests that check a section's hidden tests (the variants live in the package)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder.build import ensure_bundle
from autograder.build.variants import Variant, apply_variant, load_variants  # noqa: F401 - re-exported
from autograder.grade.bundle import load_bundle
from autograder.grade.results import ExerciseResult, SubmissionResult, TestOutcome
from autograder.layout import CourseLayout
from conftest import REPO, available_sandbox

if TYPE_CHECKING:
    from autograder.grade.runner import Grader

LAYOUT = CourseLayout(REPO)


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.write_text(nbformat.writes(nb))
    return path


MUTANTS_REQUIRED, ALTERNATIVES_REQUIRED = 2, 1  # per exercise (SECTION_DONE.md, points 7 and 8)


def required_variants(variants: list[Variant]) -> list[Variant]:
    """Each exercise's first two mutants and first alternative, in variants.toml's order: what every test
    run grades. The rest are graded with ``--all-variants``."""
    wanted = {"mutant": MUTANTS_REQUIRED, "alternative": ALTERNATIVES_REQUIRED}
    taken: dict[tuple[str, str], int] = {}
    required = []
    for v in variants:
        key = (v.kind, v.exercise)
        if taken.get(key, 0) < wanted[v.kind]:
            taken[key] = taken.get(key, 0) + 1
            required.append(v)
    return required


def import_fresh(monkeypatch, folder: Path, module: str):
    """``module`` imported anew from ``folder`` (a section's helpers or training script), so that the test's
    monkeypatched environment (profile, asset cache) applies to it; the path goes when the test ends."""
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(module, None)
    return importlib.import_module(module)


@contextmanager
def lite_grader(assignment) -> Iterator[Grader]:
    """A Grader of ``assignment`` (lite, this machine's sandbox), its bundle built first; its warm worker stopped after."""
    from autograder.grade.runner import Grader  # imports torch: only for the tests that grade

    ensure_bundle(LAYOUT, assignment)
    with Grader(load_bundle(LAYOUT.bundles / assignment.id), profile="lite", sandbox=available_sandbox()) as grader:
        yield grader


def scores(result) -> dict[str, float]:
    """Exercise -> points scored."""
    return {e.name: e.score for e in result.exercises}


def read_results(path: Path) -> SubmissionResult:
    """A ``results.json`` the CLI wrote, read back into the result it was written from (what
    :func:`scores` and :func:`explain` read)."""
    data = json.loads(path.read_text())
    extra = data["extra_data"]
    exercises = {name: ExerciseResult(name, e["max_score"], fingerprint=e["fingerprint"])
                 for name, e in extra["exercises"].items()}
    for t in data["tests"]:
        exercise = t["extra_data"]["exercise"]
        exercises[exercise].tests.append(TestOutcome(
            exercise, t["name"].removeprefix(f"{exercise}: "), t["score"], t["max_score"], t["status"] == "passed",
            t["output"], t["extra_data"]["reason"], t["extra_data"]["duration_s"], t["extra_data"]["setup_s"]))
    for name, e in extra["exercises"].items():
        # Each test's score is rounded to 6 places there (three thirds of 20 add up to 20.000001); the
        # exercise's score is its exact sum. The remainder goes back to its last test.
        if exercises[name].tests:
            exercises[name].tests[-1].score += e["score"] - sum(t.score for t in exercises[name].tests)
    result = SubmissionResult(
        extra["assignment"], extra["submission"], extra["submission_sha256"], extra["bundle_hash"],
        extra["grader_version"], extra["profile"], extra["device"], list(exercises.values()), data["output"],
        data["execution_time"], error=extra["error"], sandbox=extra["sandbox"], public_output=extra["public_output"])
    result.free_points = round(data["max_score"] - sum(e.max_score for e in result.exercises), 6)
    return result


def full_marks(assignment) -> dict[str, float]:
    """Exercise -> its points, as :func:`scores` of a submission that gets them all."""
    return {e.name: e.points for e in assignment.exercises}


def explain(result) -> str:
    """What each failed test case said: the assertion message to read when a score is not the one expected."""
    return "\n".join(f"{t.exercise}/{t.name}: {t.output[:600]}" for e in result.exercises for t in e.tests if not t.passed)
