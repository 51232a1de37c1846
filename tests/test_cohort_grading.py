"""Grading for a cohort: the cohort seed, and per-exercise fingerprints that tell a regrade what a fix touched."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from autograder.build import build_course
from autograder.build.samples import reference_submission, with_cell_source
from autograder.grade.bundle import load_bundle
from autograder.grade.runner import Grader, run_seed
from autograder.layout import CourseLayout
from autograder.reports.feedback import feedback_html
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


def test_bundle_fingerprints_match_what_the_grader_stamps(toy_layout, toy_assignment):
    from autograder.grade.runner import bundle_fingerprints

    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    assert bundle_fingerprints(bundle, "lite", "cpu", 5) == fingerprints(toy_layout, cohort_seed=5)
    assert bundle_fingerprints(bundle, "lite", "cpu") == fingerprints(toy_layout)


# --------------------------------------------------------------------------- grade --cohort, then regrade

NAIVE_SOFTMAX = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"


@pytest.fixture
def toy_cohort(tmp_path):
    """The toy course with a cohort of three: a correct solution, a naive softmax (late), and a blank."""
    import os
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from autograder.build.samples import blank_submission
    from autograder.cohort.collect import collect
    from autograder.cohort.commands import load_course_cohort
    from autograder.gradebook import open_gradebook

    shutil.copytree(TOY_COURSE / "source", tmp_path / "source")
    layout = CourseLayout(tmp_path)
    build_course(layout)
    cohorts = tmp_path / "instructors" / "cohorts"
    cohorts.mkdir(parents=True)
    (cohorts / "roster.csv").write_text(
        "id,name,email\nu1,Ada Byron,ada@example.org\nu2,Alan Turing,alan@example.org\nu3,Grace Hopper,grace@example.org\n"
    )
    (cohorts / "spring.toml").write_text(
        '[cohort]\ntimezone = "UTC"\nseed = 99\nroster = "roster.csv"\n'
        "[late_policy]\ngrace_minutes = 0\npenalty_per_day = 0.25\nmax_penalty = 0.5\n"
        '[[assignments]]\nid = "0.1"\nopens = "2026-01-01 09:00"\ndue = "2026-01-10 12:00"\n'
    )
    assignment = find_toy(layout)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    naive = with_cell_source(reference_submission(assignment), "softmax", NAIVE_SOFTMAX)
    handed_in = {
        "u1": (reference_submission(assignment), "2026-01-09 10:00"),
        "u2": (naive, "2026-01-11 09:00"),  # 21 hours late: one started day, -25%
        "u3": (blank_submission(assignment), "2026-01-10 11:00"),
    }
    for student, (nb, when) in handed_in.items():
        path = write_notebook(inbox / f"toy_{student}.ipynb", nb)
        stamp = datetime.fromisoformat(when).replace(tzinfo=ZoneInfo("UTC")).timestamp()
        os.utime(path, (stamp, stamp))
    cohort = load_course_cohort(layout, "spring")
    engine = open_gradebook(tmp_path / "book.sqlite")
    report = collect(engine, tmp_path, cohort, "0.1_toy", inbox)
    assert not report.unmapped and len(report.stored) == 3
    return layout


def find_toy(layout):
    from autograder.authoring.assignment import find_assignment

    return find_assignment(layout.source, "0.1")


def cli_in(layout, *args):
    from autograder.cli import main

    return main(["--root", str(layout.root), *args, "--db", str(layout.root / "book.sqlite")])


def book(layout):
    from autograder.gradebook import final_grades, grades_for, open_gradebook

    engine = open_gradebook(layout.root / "book.sqlite")
    rows = {r.student: r for r in grades_for(engine, "0.1_toy", cohort="spring")}
    return rows, {g.student: g for g in final_grades(engine, "spring", "0.1_toy")}


def test_grade_a_cohort_then_regrade_only_what_a_test_fix_changed(toy_cohort, capsys):
    import json

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from autograder.gradebook import TestRow, open_gradebook

    layout = toy_cohort
    assert cli_in(layout, "grade", "0.1", "--cohort", "spring", *sandbox_flags()) == 0
    rows, finals = book(layout)
    assert {s: r.score for s, r in rows.items()} == {"u1": 10, "u2": 8, "u3": 0}
    assert finals["u2"].late_penalty == pytest.approx(2.0) and finals["u2"].final_score == pytest.approx(6.0)
    assert finals["u1"].late_penalty == 0 and rows["u1"].submitted_at is not None
    results = layout.root / "results" / "spring" / "0.1_toy"
    assert json.loads((results / "u2" / "results.json").read_text())["score"] == 8

    # Nothing changed: nothing to regrade.
    assert cli_in(layout, "regrade", "0.1", "--cohort", "spring", "--yes") == 0
    assert "up to date" in capsys.readouterr().err

    # A marker in a recorded `scale` result: a regrade that touched `scale` would wipe it.
    engine = open_gradebook(layout.root / "book.sqlite")
    with Session(engine) as s, s.begin():
        s.execute(update(TestRow).where(TestRow.exercise == "scale").values(output="recorded before the fix"))

    # The instructor decides overflow is out of scope and makes the large-logits case moderate.
    edit(layout, "tests/test_toy.py", "[[1000.0, 1001.0, 999.0]]", "[[10.0, 11.0, 9.0]]")
    assert cli_in(layout, "regrade", "0.1", "--cohort", "spring", "--dry-run") == 0
    shown = capsys.readouterr()
    assert "u2" in shown.out and "softmax" in shown.out and "nothing recorded" in shown.err
    assert book(layout)[0]["u2"].score == 8  # a dry run records nothing

    assert cli_in(layout, "regrade", "0.1", "--cohort", "spring", "--yes") == 0
    rows, finals = book(layout)
    assert {s: r.score for s, r in rows.items()} == {"u1": 10, "u2": 10, "u3": 0}
    assert finals["u2"].late_penalty == pytest.approx(2.5)  # the penalty follows the new score
    for row in rows.values():  # untouched: the exercise the fix did not reach
        assert {t.output for t in row.tests if t.exercise == "scale"} == {"recorded before the fix"}
    assert json.loads((results / "u2" / "results.json").read_text())["score"] == 10


def sandbox_flags():
    return [] if available_sandbox() == "bwrap" else ["--no-sandbox"]


def test_an_instructor_hint_reaches_the_feedback_page_and_changes_no_fingerprint(editable_toy, tmp_path):
    before = fingerprints(editable_toy)
    edit(editable_toy, "assignment.toml", 'name = "softmax"\npoints = 4',
         'name = "softmax"\npoints = 4\nhint = "Subtract each row\'s max before exp: exp(1000) overflows."')
    assert changed(before, fingerprints(editable_toy)) == []  # a hint never changes a score: nothing to regrade
    naive = with_cell_source(reference_submission(find_toy(editable_toy)), "softmax", NAIVE_SOFTMAX)
    path = write_notebook(tmp_path / "naive.ipynb", naive)
    from autograder.cli import main

    assert main(["--root", str(editable_toy.root), "grade", "0.1", str(path), "--out", str(tmp_path / "out"),
                 "--db", str(tmp_path / "book.sqlite"), *sandbox_flags()]) == 0
    page = (tmp_path / "out" / "naive" / "feedback.html").read_text()
    assert "Subtract each row&#x27;s max before exp" in page


SCALE_CHECK = """

def _scale(notebook):
    out = notebook["Scale"](notebook["Config"](width=3))(torch.ones(3))
    assert torch.equal(out, torch.ones(3)), f"a Scale whose weights are all 1 changes nothing; got {out.tolist()}"


CHECKS["scale"] = _scale
"""
HANGS_ON_TIES = (  # right on the hidden tests' random inputs; the public check's [1000, 1000] never returns
    "def softmax(x):\n"
    "    while bool((x == x.max(dim=-1, keepdim=True).values).sum(dim=-1).max() > 1):\n"
    "        pass\n"
    "    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
)
HANGS_ALWAYS = "def softmax(x):\n    while True:\n        pass\n"
WRONG_SCALE = "        return x * self.w\n"


def test_a_public_check_that_hangs_costs_only_its_own_output(editable_toy, tmp_path, monkeypatch):
    """Each exercise's public check runs on its own: softmax's hangs (on an input the hidden tests never use), and
    scale's output still reaches the student. Where the hidden tests already ran out of time, the check is not run
    again, and the page says why."""
    from autograder.grade import runner

    with open(editable_toy.source / "0.1_toy" / "public_tests.py", "a") as checks:
        checks.write(SCALE_CHECK)
    build_course(editable_toy)
    monkeypatch.setattr(runner, "PUBLIC_CHECK_TIMEOUT_S", 3.0)
    assignment = find_toy(editable_toy)
    bundle = load_bundle(editable_toy.bundles / assignment.id)
    reference = reference_submission(assignment)
    modules = next(c.source for c in reference.cells if c.get("id") == "modules")
    assert WRONG_SCALE in modules
    wrong_scale = with_cell_source(reference, "modules", modules.replace(WRONG_SCALE, WRONG_SCALE.replace("self.w", "self.w * 2")))
    submissions = {name: write_notebook(tmp_path / f"{name}.ipynb", with_cell_source(wrong_scale, "softmax", source))
                   for name, source in (("ties", HANGS_ON_TIES), ("forever", HANGS_ALWAYS))}
    with Grader(bundle, sandbox=available_sandbox(), limits=replace(bundle.limits, test_timeout_s=3)) as grader:
        ties = grader.grade_path(submissions["ties"])
        assert [t.reason for t in ties.exercise("softmax").tests] == ["passed", "wrong"]
        assert ties.public_output["softmax"] == runner.PUBLIC_CHECK_TIMED_OUT.format(seconds=3.0)
        assert "a Scale whose weights are all 1 changes nothing; got [2.0, 2.0, 2.0]" in ties.public_output["scale"]

        forever = grader.grade_path(submissions["forever"])
    assert {t.reason for t in forever.exercise("softmax").tests} == {"timeout"}
    assert forever.public_output["softmax"] == runner.PUBLIC_CHECK_SKIPPED  # not run (it would have timed out)
    assert "got [2.0, 2.0, 2.0]" in forever.public_output["scale"]
    page = feedback_html(forever, public_output=forever.public_output)
    assert "ran past the time limit in the hidden tests" in page


def test_overrides_from_the_cli_with_their_audit_trail(toy_cohort, capsys, monkeypatch):
    layout = toy_cohort
    assert cli_in(layout, "grade", "0.1", "--cohort", "spring", *sandbox_flags()) == 0
    assert cli_in(layout, "override", "0.1", "u3", "5", "--cohort", "spring", "--author", "ta-lee") == 2
    assert "needs a reason" in capsys.readouterr().err  # nothing changes without a why
    monkeypatch.delenv("USER", raising=False)  # cron, containers: --author has no default
    assert cli_in(layout, "override", "0.1", "u3", "5", "--cohort", "spring", "--reason", "bonus") == 2
    assert "give --author NAME" in " ".join(capsys.readouterr().err.split())
    assert cli_in(layout, "override", "0.1", "u3", "5", "--cohort", "spring", "--author", "ta-lee",
                  "--reason", "handed in by email after a Canvas outage") == 0
    assert book(layout)[1]["u3"].final_score == 5
    assert cli_in(layout, "override", "0.1", "u3", "--clear", "--cohort", "spring", "--author", "prof-kim",
                  "--reason", "resubmitted through Canvas") == 0
    assert book(layout)[1]["u3"].final_score == 0
    capsys.readouterr()
    assert cli_in(layout, "override", "0.1", "--history", "--cohort", "spring") == 0
    trail = capsys.readouterr().out
    assert "ta-lee" in trail and "prof-kim" in trail and "cleared" in trail and "Canvas outage" in trail


def test_the_public_checks_output_reaches_the_feedback_page_and_no_score(editable_toy, tmp_path):
    from autograder.cli import main

    naive = with_cell_source(reference_submission(find_toy(editable_toy)), "softmax", NAIVE_SOFTMAX)
    path = write_notebook(tmp_path / "naive.ipynb", naive)
    full_marks = write_notebook(tmp_path / "full_marks.ipynb", reference_submission(find_toy(editable_toy)))
    assert main(["--root", str(editable_toy.root), "grade", "0.1", str(path), str(full_marks), "--out",
                 str(tmp_path / "out"), "--db", str(tmp_path / "book.sqlite"), *sandbox_flags()]) == 0
    import json

    # Run only where points were lost: the student saw the rest in their own notebook.
    assert json.loads((tmp_path / "out" / "full_marks" / "results.json").read_text())["extra_data"]["public_output"] == {}

    results = json.loads((tmp_path / "out" / "naive" / "results.json").read_text())
    assert results["score"] == 8  # the public checks count for nothing
    said = results["extra_data"]["public_output"]
    assert list(said) == ["softmax"] and "gives nan: subtract the row's max" in said["softmax"]
    page = (tmp_path / "out" / "naive" / "feedback.html").read_text()
    assert "gives nan: subtract the row&#x27;s max before exp" in page
