"""Helpers for the tests that check a section's hidden tests (the variants live in the package)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from autograder.build import ensure_bundle
from autograder.build.samples import blank_submission, reference_submission
from autograder.build.variants import Variant, apply_variant, load_variants  # noqa: F401 - re-exported
from autograder.grade.results import ExerciseResult, SubmissionResult, TestOutcome
from autograder.layout import CourseLayout
from conftest import REPO, available_sandbox

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
    monkeypatched environment (profile, asset cache) applies to it. The path and the module go when the test
    ends: a grader loaded later in this process imports the bundle's copy, not this one."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(sys.modules, module, None)  # recorded, so that undoing it removes the fresh import
    del sys.modules[module]
    return importlib.import_module(module)


def checkpoint_files(folder: Path, max_mib: float) -> set[str]:
    """A shipped checkpoint's files (relative paths), once it is checked to stay small and to have
    every other file named in its SHA256SUMS: a file left out there would slip past its verification."""
    from autograder.assets.loading import read_sha256sums

    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    size = sum((folder / f).stat().st_size for f in files)
    assert size <= max_mib * 1024 * 1024, f"{folder} holds {size / 2**20:.1f} MiB, more than {max_mib} MiB"
    hashed = set(read_sha256sums(folder))
    assert files - {"SHA256SUMS"} <= hashed, f"SHA256SUMS in {folder} does not name {sorted(files - hashed - {'SHA256SUMS'})}"
    assert hashed <= files, f"SHA256SUMS in {folder} names files that are not there: {sorted(hashed - files)}"
    return files


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


def short(assignment) -> str:
    return assignment.id.split("_", 1)[0]


REFERENCE, BLANK = "reference", "blank release"


# Submissions a section's own tests add to its batch (an attack, ...): assignment id -> name -> a function
# that builds the notebook. Registered (with in_section_batch) when their test module is collected, so
# before any batch is graded.
EXTRA_SUBMISSIONS: dict[str, dict[str, Callable[[], nbformat.NotebookNode]]] = {}


def in_section_batch(assignment, name: str):
    """Decorate a function that builds a notebook: graded in the section's batch, its result under ``name``."""
    def register(build: Callable[[], nbformat.NotebookNode]) -> Callable[[], nbformat.NotebookNode]:
        EXTRA_SUBMISSIONS.setdefault(assignment.id, {})[name] = build
        return build
    return register


# What a student might run to pass every comparison: each replaced in the student's own process.
COMPARISONS_MONKEYPATCHED = (
    "import torch, numpy\n"
    "torch.allclose = lambda *a, **k: True\n"
    "torch.equal = lambda *a, **k: True\n"
    "torch.testing.assert_close = lambda *a, **k: None\n"
    "numpy.testing.assert_allclose = lambda *a, **k: None\n"
)


def register_monkeypatched_comparisons(assignment, cell_id: str, wrong_answer: str) -> str:
    """Grade, in the section's batch, the reference with cell ``cell_id`` replaced by a wrong answer
    that first monkeypatches the comparison functions; returns the result's name. The hidden tests
    compare in the grader's process, so that exercise must still lose its points, and only it."""
    name = "attack: monkeypatched comparisons"

    @in_section_batch(assignment, name)
    def monkeypatched_comparisons() -> nbformat.NotebookNode:
        nb = reference_submission(assignment)
        next(c for c in nb.cells if c["id"] == cell_id).source = COMPARISONS_MONKEYPATCHED + wrong_answer
        return nb

    return name


class SectionBatches:
    """Each assignment's submissions graded once, as a grader grades a cohort: by the CLI, from a cold start,
    with two worker processes. The required batch holds the reference (graded first), the blank release,
    the required variants and what the section's tests registered: one boot per section, which the
    cold-start check times too. The extra variants are a second batch, on request."""

    def __init__(self, folder):
        self.folder = folder
        self.results: dict[tuple[str, bool], dict | Exception] = {}
        self.reference_done_s: dict[str, float] = {}  # assignment -> from the command's start to the reference's result
        self.printed: dict[str, str] = {}  # assignment -> what the command printed on its standard output

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
        notebooks = {} if extra else {REFERENCE: reference_submission(assignment), BLANK: blank_submission(assignment)}
        notebooks |= {v.id: apply_variant(assignment, v) for v in load_variants(assignment) if (v not in required) == extra}
        for name, build in ({} if extra else EXTRA_SUBMISSIONS.get(assignment.id, {})).items():
            if name in notebooks:
                raise ValueError(f"{assignment.id}: a submission named {name!r} is already in the batch")
            notebooks[name] = build()
        folder = self.folder / f"{short(assignment)}{'-extra' if extra else ''}"
        (folder / "submissions").mkdir(parents=True)
        # Numbered in this order, and the CLI grades a folder in name order: the reference goes first.
        paths = {write(nb, folder / "submissions" / f"submission_{i:03d}.ipynb"): name
                 for i, (name, nb) in enumerate(notebooks.items())}
        out = folder / "out"
        command = [sys.executable, "-m", "autograder", "--root", str(REPO), "grade", short(assignment),
                   str(folder / "submissions"), "--jobs", "2", "--profile", "lite",
                   "--out", str(out), "--db", str(folder / "book.sqlite")]
        if available_sandbox() == "none":
            command.append("--no-sandbox")
        started = time.time()
        run = subprocess.run(command, env={**os.environ, "AUTOGRADER_PROFILE": "lite"}, capture_output=True, text=True)
        if run.returncode != 0:  # every test of this batch fails with it, none regrades
            return RuntimeError(f"{' '.join(command)} exited with {run.returncode}:\n{run.stderr[-3000:]}")
        results = {name: read_results(out / path.stem / "results.json") for path, name in paths.items()}
        if not extra:
            self.printed[assignment.id] = run.stdout
            reference = next(path for path, name in paths.items() if name == REFERENCE)
            self.reference_done_s[assignment.id] = (out / reference.stem / "results.json").stat().st_mtime - started
        return results
