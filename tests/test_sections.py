"""Every course section, checked the same way (SECTION_DONE.md, points 5–8):

* the reference gets 100 through the CLI, cold, its result within 60 s (graded first in the section's batch);
* the blank release gets only the section's free points;
* every exercise has at least two mutants and one alternative;
* every mutant loses points in its own exercise and no other;
* every alternative gets full marks;
* a shipped lite checkpoint is small and every file of it is under its recorded hash (point 10).

Each exercise's first two mutants and first alternative (variants.toml's order: the SECTION_DONE minimum)
are graded by every run; the rest only with ``--all-variants`` (``make test-all``), which keeps the
default suite inside its 30-minute budget on 2 cores.

Section-specific checks (the lite model shows the phenomenon, the public
checks, ...) live in ``test_section_<id>.py``; the public checks in ``test_public_checks.py``.
"""

from __future__ import annotations

import pytest

from autograder.authoring.assignment import discover_assignments
from sections import BLANK, LAYOUT, REFERENCE, checkpoint_files, explain, full_marks, load_variants, required_variants, scores, short

ASSIGNMENTS = discover_assignments(LAYOUT.source)
VARIANTS = [(a, v) for a in ASSIGNMENTS for v in load_variants(a)]
COLD_START_LIMIT_S = 60  # SECTION_DONE.md, point 6
CHECKPOINT_LIMIT_MIB = 5  # point 10: "a small checkpoint (a few MB at most)"


@pytest.fixture(scope="module")
def batches(section_batches):
    return section_batches


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


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS if a.assets.get("lite")], ids=short)
def test_lite_checkpoint_is_small_and_wholly_hashed(assignment):
    folder = assignment.source_dir / assignment.assets["lite"]["model"]
    assert "SHA256SUMS" in checkpoint_files(folder, max_mib=CHECKPOINT_LIMIT_MIB)


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=short)
def test_reference_full_marks_from_a_cold_start(assignment, batches):
    """The CLI on this machine's CPUs, model loading included: the reference, graded first in the section's
    batch, has its result written within the limit of the command's start (SECTION_DONE.md, point 6).
    The second worker grades beside it, so this is a stricter measure than a lone submission's."""
    result = batches.result(assignment, REFERENCE)
    assert result.score == result.max_score == 100, explain(result)
    elapsed = batches.reference_done_s[assignment.id]
    assert elapsed <= COLD_START_LIMIT_S, f"the reference's result came {elapsed:.1f} s after the command started"


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
