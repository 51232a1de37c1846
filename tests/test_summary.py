"""The batch summary printed at the end of `autograder grade` (autograder.reports.summary)."""

from __future__ import annotations

from rich.console import Console

from autograder.grade.results import ExerciseResult, SubmissionResult
from autograder.grade.results import TestOutcome as Outcome  # not "Test*": pytest would try to collect it
from autograder.reports.summary import print_summary


def graded(name: str, score: float) -> SubmissionResult:
    outcome = Outcome("softmax", "case", score, 10.0, score == 10.0, "", "passed" if score == 10.0 else "wrong")
    return SubmissionResult("0.1_toy", name, "0" * 64, "b" * 64, "1.0", "lite", "cpu",
                            [ExerciseResult("softmax", 10.0, [outcome])])


def shown(results, penalties=None) -> str:
    console = Console(record=True, width=200)
    print_summary(results, console, penalties)
    return console.export_text()


def test_a_cohorts_summary_shows_each_late_penalty_beside_the_score():
    text = shown([graded("ada", 10.0), graded("bob", 6.0)], {"ada": 0.0, "bob": 1.2})
    ada, bob = (next(line for line in text.splitlines() if name in line) for name in ("ada", "bob"))
    assert "10/10" in ada and "-1.2" not in ada and "6/10" in bob and "-1.2" in bob
    assert "late: 1 submission(s), 1.2 point(s) taken off in all" in text
    assert "late penalty" not in shown([graded("ada", 10.0)])  # no cohort: no column


def test_a_file_name_is_shown_as_written_not_read_as_markup():
    text = shown([graded("[bold]eve[/bold]", 0.0)])
    assert "[bold]eve[/bold]" in text
