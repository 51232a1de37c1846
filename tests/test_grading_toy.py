"""End-to-end grading on the toy assignment: scores, isolation, feedback, formats."""

from __future__ import annotations

import json

import jupytext
import pytest

from autograder.build.samples import blank_submission, partial_submission, reference_submission, with_cell_source
from autograder.grade.results import write_json_atomic
from autograder.gradebook import grades_for, open_gradebook, record
from conftest import available_sandbox, write_notebook
from sections import scores

SOFTMAX_SOLUTION = '''def softmax(x):
    shifted = x - x.max(dim=-1, keepdim=True).values
    exps = shifted.exp()
    return exps / exps.sum(dim=-1, keepdim=True)
'''


def grade_nb(grader, tmp_path, nb, name="sub"):
    return grader.grade_path(write_notebook(tmp_path / f"{name}.ipynb", nb))


def test_reference_full_marks_blank_zero(toy_grader, toy_assignment, tmp_path):
    ref = grade_nb(toy_grader, tmp_path, reference_submission(toy_assignment), "reference")
    assert ref.score == ref.max_score == 10
    blank = grade_nb(toy_grader, tmp_path, blank_submission(toy_assignment), "blank")
    assert blank.score == 0
    assert all(t.reason == "not_attempted" for e in blank.exercises for t in e.tests)
    partial = grade_nb(toy_grader, tmp_path, partial_submission(toy_assignment), "partial")
    assert scores(partial) == {"softmax": 4, "scale": 0, "double_scale": 0}


def test_bug_in_dependency_costs_only_its_exercise(toy_grader, toy_assignment, tmp_path):
    """DoubleScale is graded with the reference Scale, so a Scale bug costs only `scale`."""
    nb = reference_submission(toy_assignment)
    cell = next(c for c in nb.cells if c["id"] == "modules")
    buggy = with_cell_source(nb, "modules", cell.source.replace("return x * self.w", "return x + self.w"))
    assert scores(grade_nb(toy_grader, tmp_path, buggy)) == {"softmax": 4, "scale": 0, "double_scale": 3}


def test_partial_credit_per_test_case(toy_grader, toy_assignment, tmp_path):
    """A softmax without the max shift passes the random case but overflows on large logits."""
    nb = reference_submission(toy_assignment)
    naive = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
    result = grade_nb(toy_grader, tmp_path, with_cell_source(nb, "softmax", naive))
    assert scores(result)["softmax"] == 2
    failed = [t for t in result.exercise("softmax").tests if not t.passed][0]
    assert "softmax of large logits" in failed.output and "worst element at index" in failed.output


def test_monkeypatching_comparisons_gains_nothing(toy_grader, toy_assignment, tmp_path):
    attack = (
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "torch.equal = lambda *a, **k: True\n"
        "numpy.allclose = lambda *a, **k: True\n"
        "import autograder.checks\nautograder.checks.assert_close = lambda *a, **k: None\n"
        "def softmax(x):\n    return x\n"
    )
    nb = with_cell_source(blank_submission(toy_assignment), "softmax", attack)
    result = grade_nb(toy_grader, tmp_path, nb)
    assert result.score == 0
    assert "values differ" in result.exercise("softmax").tests[0].output


def test_setup_cell_edits_are_ignored(toy_grader, toy_assignment, tmp_path):
    nb = reference_submission(toy_assignment)
    setup = next(c for c in nb.cells if c.metadata.get("autograder", {}).get("role") == "setup")
    setup.source = "raise SystemExit('I broke setup')"
    assert grade_nb(toy_grader, tmp_path, nb).score == 10


def test_deleted_duplicated_and_reordered_cells(toy_grader, toy_assignment, tmp_path):
    nb = reference_submission(toy_assignment)
    softmax_cell = next(c for c in nb.cells if c["id"] == "softmax")
    nb.cells = [c for c in nb.cells if c["id"] != "modules"][::-1] + [softmax_cell]
    result = grade_nb(toy_grader, tmp_path, nb)
    assert scores(result) == {"softmax": 4, "scale": 0, "double_scale": 0}
    assert "was not found in your submission" in result.exercise("scale").tests[0].output


def test_syntax_error_costs_only_its_cell(toy_grader, toy_assignment, tmp_path):
    nb = with_cell_source(reference_submission(toy_assignment), "softmax", "def softmax(x:\n    return x\n")
    result = grade_nb(toy_grader, tmp_path, nb)
    assert scores(result) == {"softmax": 0, "scale": 3, "double_scale": 3}
    assert "SyntaxError" in result.exercise("softmax").tests[0].output


def test_infinite_loop_times_out_and_the_rest_is_graded(toy_grader, toy_assignment, tmp_path):
    from dataclasses import replace

    nb = with_cell_source(reference_submission(toy_assignment), "softmax", "def softmax(x):\n    while True:\n        pass\n")
    original = toy_grader.limits
    toy_grader.limits = replace(original, test_timeout_s=2)
    try:
        result = grade_nb(toy_grader, tmp_path, nb)
    finally:
        toy_grader.limits = original
    assert scores(result) == {"softmax": 0, "scale": 3, "double_scale": 3}
    assert all(t.reason == "timeout" for t in result.exercise("softmax").tests)
    assert "time limit" in result.exercise("softmax").tests[0].output


def test_jupytext_percent_submission(toy_grader, toy_assignment, tmp_path):
    """A .py export loses cell ids; answers are matched by nbgrader grade_id metadata."""
    nb = reference_submission(toy_assignment)
    from autograder.build.samples import blank_submission as blank

    released = blank(toy_assignment)
    for cell in nb.cells:  # a student's file carries the release's metadata
        cell.metadata = next(c.metadata for c in released.cells if c["id"] == cell["id"])
    path = tmp_path / "percent.py"
    path.write_text(jupytext.writes(nb, fmt="py:percent"))
    assert "id" not in jupytext.read(path).cells[2] or True
    assert toy_grader.grade_path(path).score == 10


def test_definition_fallback_when_ids_are_lost(toy_grader, toy_assignment, tmp_path):
    nb = reference_submission(toy_assignment)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"renamed-{i}"
        cell.metadata = {}
    result = grade_nb(toy_grader, tmp_path, nb)
    assert result.score == 10
    assert "matched to your cell by the names it defines" not in result.exercise("softmax").tests[0].output


def test_unreadable_submission_gets_a_result(toy_grader, tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    result = toy_grader.grade_path(path)
    assert result.score == 0 and result.error and "not a valid Jupyter notebook" in result.error


def test_results_json_schema(toy_grader, toy_assignment, tmp_path):
    result = grade_nb(toy_grader, tmp_path, partial_submission(toy_assignment))
    out = tmp_path / "out" / "results.json"
    write_json_atomic(out, result.to_gradescope())
    data = json.loads(out.read_text())
    assert {"score", "max_score", "execution_time", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in {"passed", "failed"}
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"])


def test_gradebook_regrade_replaces_row(toy_grader, toy_assignment, tmp_path):
    engine = open_gradebook(tmp_path / "book.sqlite")
    blank = grade_nb(toy_grader, tmp_path, blank_submission(toy_assignment), "alice")
    record(engine, blank)
    ref = grade_nb(toy_grader, tmp_path, reference_submission(toy_assignment), "alice")
    record(engine, ref)
    rows = grades_for(engine, toy_assignment.id)
    assert len(rows) == 1
    row = rows[0]
    assert row.score == 10 and row.submission_sha256 == ref.submission_sha256
    assert row.bundle_hash == ref.bundle_hash and row.grader_version
    assert {e.exercise: e.score for e in row.exercises} == {"softmax": 4, "scale": 3, "double_scale": 3}
    assert len(row.tests) == 4


def test_batch_resumes_and_regrades(toy_layout, toy_assignment, tmp_path, capsys):
    """A re-run skips what is graded with the same bundle; a changed submission or --regrade is graded again."""
    from autograder.cli import main as cli

    subs = tmp_path / "subs"
    subs.mkdir()
    write_notebook(subs / "alice.ipynb", reference_submission(toy_assignment))
    write_notebook(subs / "bob.ipynb", blank_submission(toy_assignment))
    base = ["--root", str(toy_layout.root), "grade", "0.1", str(subs), "--out", str(tmp_path / "out"),
            "--db", str(tmp_path / "book.sqlite")]
    if available_sandbox() == "none":
        base.append("--no-sandbox")
    assert cli(base) == 0
    first = (tmp_path / "out" / "alice" / "results.json").stat().st_mtime_ns
    assert "Score: 10 / 10" in (tmp_path / "out" / "alice" / "feedback.html").read_text()
    capsys.readouterr()

    assert cli(base) == 0
    assert "2 submission(s) already graded" in capsys.readouterr().err
    assert (tmp_path / "out" / "alice" / "results.json").stat().st_mtime_ns == first

    write_notebook(subs / "bob.ipynb", partial_submission(toy_assignment))  # bob hands in again
    assert cli(base) == 0
    assert "1 submission(s) already graded" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "bob" / "results.json").read_text())["score"] == 4

    assert cli([*base, "--regrade"]) == 0
    assert "already graded" not in capsys.readouterr().err
    assert (tmp_path / "out" / "alice" / "results.json").stat().st_mtime_ns != first


def test_only_grades_those_exercises_into_the_recorded_grade(toy_layout, toy_assignment, tmp_path, capsys):
    """--only after a test fix: the named exercise is graded again and merged into each submission's recorded
    grade; the other exercises' scores stay. A misspelt exercise, or a submission with no full grade to merge into,
    is refused before anything is graded."""
    from autograder.cli import main as cli

    subs = tmp_path / "subs"
    subs.mkdir()
    write_notebook(subs / "alice.ipynb", reference_submission(toy_assignment))
    naive = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
    write_notebook(subs / "bob.ipynb", with_cell_source(reference_submission(toy_assignment), "softmax", naive))
    book = str(tmp_path / "book.sqlite")
    base = ["--root", str(toy_layout.root), "grade", "0.1", str(subs), "--out", str(tmp_path / "out"), "--db", book]
    if available_sandbox() == "none":
        base.append("--no-sandbox")
    assert cli(base) == 0

    def recorded():
        return {row.submission: {e.exercise: e.score for e in row.exercises}
                for row in grades_for(open_gradebook(book), "0.1_toy")}

    before = recorded()
    assert before == {"alice": {"softmax": 4, "scale": 3, "double_scale": 3},
                      "bob": {"softmax": 2, "scale": 3, "double_scale": 3}}
    capsys.readouterr()
    assert cli([*base, "--only", "scale"]) == 0
    assert recorded() == before
    for name, total in (("alice", 10), ("bob", 8)):
        results = json.loads((tmp_path / "out" / name / "results.json").read_text())
        assert results["score"] == total and len(results["tests"]) == 4, results

    assert cli([*base, "--only", "scael"]) == 2
    assert "0.1_toy has no exercise 'scael' (it has: softmax, scale, double_scale)" in capsys.readouterr().err
    write_notebook(subs / "carol.ipynb", reference_submission(toy_assignment))  # never graded
    assert cli([*base, "--only", "scale"]) == 2
    assert "no full grade of their current content: carol" in capsys.readouterr().err
    assert recorded() == before


def test_two_files_that_would_share_a_name_are_refused(toy_layout, toy_assignment, tmp_path, capsys):
    """Every student hands in the release's file name: in folders per student, alice/hw and bob/hw would both be
    'hw', and one grade would overwrite the other."""
    from autograder.cli import main as cli

    for student in ("alice", "bob"):
        (tmp_path / "subs" / student).mkdir(parents=True)
        write_notebook(tmp_path / "subs" / student / "hw.ipynb", reference_submission(toy_assignment))
    assert cli(["--root", str(toy_layout.root), "grade", "0.1", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                "--db", str(tmp_path / "book.sqlite")]) == 2
    said = capsys.readouterr().err
    assert "'hw' is" in said and "alice" in said and "bob" in said and "autograder collect" in said
    assert not (tmp_path / "out").exists()


def test_limits_are_overridden_from_the_command_line(toy_layout, toy_assignment, tmp_path):
    """assignment.toml gives 60 s per submission; --submission-timeout 0 leaves no time for any test."""
    from autograder.cli import main as cli

    path = write_notebook(tmp_path / "ref.ipynb", reference_submission(toy_assignment))
    base = ["--root", str(toy_layout.root), "grade", "0.1", str(path), "--out", str(tmp_path / "out"),
            "--db", str(tmp_path / "book.sqlite"), "--cpu-seconds", "120", "--max-processes", "32"]
    if available_sandbox() == "none":
        base.append("--no-sandbox")
    assert cli([*base, "--submission-timeout", "0"]) == 0
    results = json.loads((tmp_path / "out" / "ref" / "results.json").read_text())
    assert results["score"] == 0
    assert all("time limit" in t["output"] for t in results["tests"]), results["tests"]
    assert cli([*base, "--regrade"]) == 0
    assert json.loads((tmp_path / "out" / "ref" / "results.json").read_text())["score"] == 10


def test_feedback_page_shows_what_failed_and_no_hidden_code(toy_grader, toy_assignment, tmp_path):
    from autograder.reports.feedback import feedback_html

    nb = reference_submission(toy_assignment)
    naive = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
    page = feedback_html(grade_nb(toy_grader, tmp_path, with_cell_source(nb, "softmax", naive), "carol"))
    assert "Score: 8 / 10" in page
    assert "softmax of large logits" in page and "worst element at index" in page  # the student-facing check message
    hidden = (toy_assignment.source_dir / "tests" / "test_toy.py").read_text()
    assert "def test_" not in page and "@grades" not in page and "assert_close(" not in page
    assert all(line.strip() not in page for line in hidden.splitlines() if len(line.strip()) > 30)
    assert "<script" not in page and "http" not in page  # self-contained


def test_a_reference_that_switches_grad_off_does_not_switch_it_off_for_the_process(toy_layout, toy_assignment,
                                                                                   monkeypatch):
    """A grader keeps the grad mode its reference chose for its own grading, and leaves the caller's alone."""
    import torch

    from autograder.grade.bundle import load_bundle
    from autograder.grade.runner import Grader

    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    original = type(bundle).load_module

    def load_and_switch_grad_off(self, rel, name):
        module = original(self, rel, name)
        if rel == "reference.py":
            torch.set_grad_enabled(False)
        return module

    monkeypatch.setattr(type(bundle), "load_module", load_and_switch_grad_off)
    assert torch.is_grad_enabled()
    grader = Grader(bundle, sandbox="none")
    assert torch.is_grad_enabled() and grader.grad_mode is False


def test_time_in_a_tests_fixtures_is_recorded_apart_from_its_body(toy_layout, toy_assignment, tmp_path):
    """The benchmark's overhead counts both (benchmarks/grading_throughput.py); results.json keeps them apart."""
    import functools
    import time

    from autograder.grade.bundle import load_bundle
    from autograder.grade.runner import Grader

    grader = Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox=available_sandbox(),
                    warm=False, public_checks=False)
    make_cfg = grader.fixtures["cfg"]

    @functools.wraps(make_cfg)  # keeps its signature: the fixture still asks for `reference`
    def slow_cfg(**kwargs):
        time.sleep(0.5)
        return make_cfg(**kwargs)

    grader.fixtures["cfg"] = slow_cfg
    try:
        result = grade_nb(grader, tmp_path, reference_submission(toy_assignment))
    finally:
        grader.close()
    outcomes = {t.name: t for e in result.exercises for t in e.tests}
    assert outcomes["scale"].setup_s >= 0.5 > outcomes["scale"].duration_s
    # computed once per batch: the next test that asks for it finds it ready
    assert outcomes["double scale"].setup_s < 0.5 and outcomes["softmax random"].setup_s < 0.5
    extra = {t["name"]: t["extra_data"] for t in result.to_gradescope()["tests"]}
    assert extra["scale: scale"]["setup_s"] >= 0.5
    assert all(e["duration_s"] > 0 for e in extra.values())


def test_warm_up_computes_the_shared_fixtures_once_before_the_first_submission(toy_layout, toy_assignment, tmp_path):
    """A batch computes the reference's expected values before grading, not inside the first submission's tests."""
    import functools
    import time

    from autograder.grade.bundle import load_bundle
    from autograder.grade.runner import Grader

    def slowed(grader):
        make_cfg = grader.fixtures["cfg"]

        @functools.wraps(make_cfg)
        def slow_cfg(**kwargs):
            time.sleep(0.5)
            return make_cfg(**kwargs)

        grader.fixtures["cfg"] = slow_cfg
        return grader

    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    grader = slowed(Grader(bundle, sandbox=available_sandbox(), public_checks=False))
    try:
        assert grader.warm_up() >= 0.5
        result = grade_nb(grader, tmp_path, reference_submission(toy_assignment))
    finally:
        grader.close()
    assert result.score == result.max_score
    assert all(t.setup_s < 0.5 for e in result.exercises for t in e.tests)

    # Graded for one exercise only, it computes only what that exercise's tests ask for.
    only = slowed(Grader(bundle, sandbox=available_sandbox(), public_checks=False, warm=False, only=["softmax"]))
    try:
        assert only.warm_up() < 0.5
    finally:
        only.close()


def test_a_fixture_that_needs_the_student_through_another_fixture_is_never_shared():
    """Only fixtures free of per-case values are cached for the session, however deep the dependency."""
    from autograder.testing import HiddenTest, resolve_fixture, session_fixtures

    def inputs(seed):
        return [seed, seed + 1]

    def program_output(student, inputs):
        return student * inputs[0]

    def doubled(program_output):
        return 2 * program_output

    fixtures = {"inputs": inputs, "program_output": program_output, "doubled": doubled}
    session = {"seed": 3}
    first = resolve_fixture("doubled", {"student": 1}, session, fixtures)
    second = resolve_fixture("doubled", {"student": 10}, session, fixtures)
    assert (first, second) == (6, 60)
    assert set(session) == {"seed", "inputs"}

    def test_fn(doubled, inputs):
        pass

    assert session_fixtures([HiddenTest("ex", "t", 1.0, test_fn)], fixtures) == ["inputs"]
