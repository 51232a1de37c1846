"""The student's feedback page: scores, failures in student terms, hints, public output, and no reference values."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import CheckFailed, assert_close, assert_equal, check_is_tensor
from autograder.reports.feedback import HIDDEN, feedback_html, student_facing, student_results
from autograder.grade.results import ExerciseResult, SubmissionResult
from autograder.grade.results import TestOutcome as Outcome  # not "Test*": pytest would try to collect it


def failure_of(check, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_the_expected_value_at_the_worst_element_is_hidden_the_rest_stays():
    message = failure_of(assert_close, torch.tensor([[1.0, 2.0, 3.5]]), torch.tensor([[1.0, 2.0, 3.25]]),
                         what="softmax output")
    assert "expected 3.25" in message  # the check itself says it (instructors see it in the gradebook)
    shown = student_facing(message)
    assert "3.25" not in shown and f"expected {HIDDEN}" in shown
    for kept in ("softmax output", "max abs error: 0.25", "worst element at index [0, 2]", "got 3.5", "of 3"):
        assert kept in shown, kept
    assert student_facing(message, show_expected=True) == message


def test_an_exact_value_is_hidden_but_a_kind_of_value_or_a_shape_is_not():
    equal = failure_of(assert_equal, 41, 42, what="number of heads")
    assert "42" in equal
    assert student_facing(equal) == f"number of heads: got 41, which is not the expected value {HIDDEN}."
    kind = failure_of(check_is_tensor, [1, 2], what="logits")
    assert student_facing(kind) == kind  # "expected a torch.Tensor" gives nothing away
    shape = failure_of(assert_close, torch.zeros(2, 4), torch.zeros(2, 5), what="attention pattern")
    assert student_facing(shape) == shape and "(2, 5)" in shape  # the shape is what the student must fix


def result_with(outputs: dict[str, list[tuple[bool, str]]]) -> SubmissionResult:
    exercises = [
        ExerciseResult(name, 2.0 * len(cases), [
            Outcome(name, f"case {i}", 2.0 if ok else 0.0, 2.0, ok, out, "passed" if ok else "wrong")
            for i, (ok, out) in enumerate(cases)])
        for name, cases in outputs.items()
    ]
    return SubmissionResult("0.1_toy", "carol", "0" * 64, "b" * 64, "1.0", "lite", "cpu", exercises)


def test_page_shows_scores_hints_where_points_were_lost_and_public_output():
    wrong = failure_of(assert_close, torch.tensor([0.5, 0.7]), torch.tensor([0.5, 0.25]), what="softmax of 2 logits")
    result = result_with({"softmax": [(True, ""), (False, wrong)], "scale": [(True, "")]})
    page = feedback_html(
        result,
        hints={"softmax": "Subtract the max before exponentiating.", "scale": "never shown: full marks"},
        public_output={"softmax": "check_softmax: <ok> 3 of 4 passed"},
    )
    assert "Score: 4 / 6" in page and "2 / 4" in page and "2 / 2" in page
    assert "Subtract the max before exponentiating." in page and "never shown" not in page
    assert "softmax of 2 logits" in page and "max abs error: 0.45" in page  # which input, how far off
    assert "0.25" not in page  # the reference value
    assert "check_softmax: &lt;ok&gt; 3 of 4 passed" in page  # public output, escaped
    assert "<script" not in page and "http" not in page


def test_instructor_can_make_an_exercise_expected_values_visible():
    wrong = failure_of(assert_close, torch.tensor([0.5, 0.7]), torch.tensor([0.5, 0.25]))
    result = result_with({"softmax": [(False, wrong)], "scale": [(False, wrong)]})
    page = feedback_html(result, visible_expected={"softmax"})
    assert page.count("expected 0.25") == 1 and page.count(f"expected {HIDDEN}") == 1


def test_results_json_says_what_the_page_says():
    wrong = failure_of(assert_close, torch.tensor([0.5, 0.7]), torch.tensor([0.5, 0.25]))
    result = result_with({"softmax": [(False, wrong)], "scale": [(False, wrong)]})
    tests = {t["extra_data"]["exercise"]: t["output"] for t in student_results(result, {"softmax"})["tests"]}
    assert "expected 0.25" in tests["softmax"] and "0.25" not in tests["scale"]
    assert tests["scale"] == student_facing(wrong)
    assert result.exercise("scale").tests[0].output == wrong  # the result itself (the gradebook's copy) is whole


def test_student_controlled_text_is_escaped():
    result = result_with({"softmax": [(False, "your code raised ValueError: <img src=x onerror=alert(1)>")]})
    result.submission = "<b>carol</b>"
    page = feedback_html(result, hints={"softmax": "use <torch.max>"})
    assert "<img" not in page and "<b>carol" not in page and "&lt;torch.max&gt;" in page


def test_graded_page_hides_hidden_test_code_and_reference_values(toy_grader, toy_assignment, tmp_path):
    """Really graded: a softmax that overflows on large logits, on the toy assignment."""
    from autograder.build.samples import reference_submission, with_cell_source
    from conftest import write_notebook

    naive = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
    nb = with_cell_source(reference_submission(toy_assignment), "softmax", naive)
    result = toy_grader.grade_path(write_notebook(tmp_path / "carol.ipynb", nb))
    failed = next(t for t in result.exercise("softmax").tests if not t.passed)
    # The hidden test's input is [[1000, 1001, 999]]; the reference's answer at the worst element is 0.665241.
    reference = torch.softmax(torch.tensor([[1000.0, 1001.0, 999.0]]), dim=-1)
    reference_values = [f"{v:.6g}" for v in reference.flatten().tolist()]
    assert any(v in failed.output for v in reference_values)  # the raw check message quotes one of them
    page = feedback_html(result, hints={"softmax": "Large logits overflow exp(): shift them first."})
    assert "Score: 8 / 10" in page and "softmax of large logits" in page and "worst element at index" in page
    assert "Large logits overflow exp()" in page
    assert not any(v in page for v in reference_values)
    hidden = (toy_assignment.source_dir / "tests" / "test_toy.py").read_text()
    line = "x = torch.tensor([[1000.0, 1001.0, 999.0]])"
    assert line in hidden and line not in page and "[[1000.0, 1001.0, 999.0]]" not in page
    assert all(src.strip() not in page for src in hidden.splitlines() if len(src.strip()) > 25)
