"""Grading for a cohort: the cohort seed, and per-exercise fingerprints that tell a regrade what a fix touched."""

from __future__ import annotations

import shutil

import pytest
import torch

from autograder.build import build_course
from autograder.build.samples import reference_submission, with_cell_source
from autograder.grade.bundle import load_bundle
from autograder.grade.runner import Grader, run_seed
from autograder.layout import CourseLayout
from conftest import TOY_COURSE, available_sandbox, write_notebook

TOY_SEED = 7  # tests/fixtures/toy_course/source/0.1_toy/assignment.toml


def copied_answers_submission(assignment, cohort_seed):
    """A student who pastes in the softmax outputs an earlier cohort's tests asked for."""
    seed = run_seed(TOY_SEED, cohort_seed)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(seed)) * 4
    copied = torch.softmax(x, dim=-1).tolist()
    source = (
        "import torch\n"
        f"COPIED = {copied!r}\n"
        "def softmax(x):\n"
        "    if tuple(x.shape) == (3, 5):\n"
        "        return torch.tensor(COPIED)\n"
        "    shifted = x - x.max(dim=-1, keepdim=True).values\n"
        "    return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)\n"
    )
    return with_cell_source(reference_submission(assignment), "softmax", source)


def test_run_seed_is_the_assignment_seed_without_a_cohort_and_differs_per_cohort():
    assert run_seed(TOY_SEED, None) == TOY_SEED
    seeds = {run_seed(TOY_SEED, cohort) for cohort in (1, 2, 2026, 2027)}
    assert len(seeds) == 4 and all(0 <= s < 2**31 for s in seeds)
    assert run_seed(TOY_SEED, 2026) == run_seed(TOY_SEED, 2026)  # the same cohort always gets the same inputs


def test_answers_copied_from_another_cohort_gain_nothing(toy_layout, toy_assignment, tmp_path):
    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    copied = write_notebook(tmp_path / "copied.ipynb", copied_answers_submission(toy_assignment, cohort_seed=2025))
    reference = write_notebook(tmp_path / "reference.ipynb", reference_submission(toy_assignment))
    sandbox = available_sandbox()
    with Grader(bundle, sandbox=sandbox, cohort_seed=2025) as old_cohort:
        assert old_cohort.grade_path(copied).exercise("softmax").score == 4  # the outputs it copied fit
    with Grader(bundle, sandbox=sandbox, cohort_seed=2026) as new_cohort:
        assert new_cohort.grade_path(reference).score == 10  # a correct solution is right for every cohort
        softmax = new_cohort.grade_path(copied).exercise("softmax")
    assert softmax.score == 2, "the random-input case must catch copied outputs"
    assert [t.passed for t in softmax.tests] == [False, True]


# --------------------------------------------------------------------------- fingerprints


@pytest.fixture
def editable_toy(tmp_path):
    shutil.copytree(TOY_COURSE / "source", tmp_path / "source")
    layout = CourseLayout(tmp_path)
    build_course(layout)
    return layout


def fingerprints(layout, **kwargs):
    grader = Grader(load_bundle(layout.bundles / "0.1_toy"), sandbox="none", **kwargs)
    try:
        return grader.fingerprints
    finally:
        grader.close()


def edit(layout, relative, old, new):
    path = layout.source / "0.1_toy" / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
    build_course(layout)


def changed(before, after):
    return sorted(name for name in before if before[name] != after[name])


def test_fixing_one_test_changes_only_its_exercise(editable_toy):
    before = fingerprints(editable_toy)
    edit(editable_toy, "tests/test_toy.py", "* 4\n", "* 3\n")  # softmax's random-input case
    assert changed(before, fingerprints(editable_toy)) == ["softmax"]


def test_a_fixture_change_reaches_every_exercise_that_uses_it(editable_toy):
    before = fingerprints(editable_toy)
    edit(editable_toy, "tests/test_toy.py", "reference.Config(width=5)", "reference.Config(width=6)")
    assert changed(before, fingerprints(editable_toy)) == ["double_scale", "scale"]


def test_shared_changes_reach_every_exercise(editable_toy):
    before = fingerprints(editable_toy)
    edit(editable_toy, "assignment.toml", "test_timeout_s = 10", "test_timeout_s = 11")
    after_limits = fingerprints(editable_toy)
    assert changed(before, after_limits) == ["double_scale", "scale", "softmax"]
    edit(editable_toy, "tests/test_toy.py", "import torch\n", "import torch\nTOLERANCE = 1e-5\n")  # shared module code
    assert changed(after_limits, fingerprints(editable_toy)) == ["double_scale", "scale", "softmax"]
    assert changed(before, fingerprints(editable_toy, cohort_seed=1)) == ["double_scale", "scale", "softmax"]


def test_points_change_reaches_only_that_exercise(editable_toy):
    before = fingerprints(editable_toy)
    edit(editable_toy, "assignment.toml", 'name = "scale"\npoints = 3', 'name = "scale"\npoints = 4')
    assert changed(before, fingerprints(editable_toy)) == ["scale"]


def test_results_carry_the_fingerprints(toy_layout, toy_assignment, tmp_path):
    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    with Grader(bundle, sandbox=available_sandbox()) as grader:
        result = grader.grade_path(write_notebook(tmp_path / "ref.ipynb", reference_submission(toy_assignment)))
        assert {e.name: e.fingerprint for e in result.exercises} == grader.fingerprints
    exported = result.to_gradescope()["extra_data"]["exercises"]
    assert exported["softmax"]["fingerprint"] == grader.fingerprints["softmax"]
