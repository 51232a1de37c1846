"""A student's feedback report: one self-contained HTML page per graded submission.

It shows what the student can act on: each exercise's score and, for every
failed test case, the feedback the checks wrote in student terms (shape, max
error, worst index, which input), the hint the instructor wrote for the
exercise, and the output of the public checks when the caller has it.

Hidden test code is never in a result, so it cannot reach the page. Reference
values can: a check quotes the expected value at the worst element, and an
exact-equality check quotes the expected value itself. :func:`student_facing`
takes those out unless the instructor marks the exercise's expected values as
visible.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from html import escape

from autograder.grade.results import SubmissionResult

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } .total { font-size: 1.2rem; margin-bottom: 1.5rem; }
details { border: 1px solid #ddd; border-radius: 6px; margin: .5rem 0; padding: .4rem .8rem; }
summary { cursor: pointer; font-weight: 600; } .score { float: right; }
.full { color: #1a7f37; } .partial { color: #9a6700; } .none { color: #cf222e; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; font-size: .85rem; }
li { margin: .3rem 0; } .note { color: #555; }
.hint { background: #fff8c5; border-left: 4px solid #d4a72c; padding: .4rem .7rem; margin: .5rem 0; }
h3 { font-size: 1rem; margin: .8rem 0 .3rem; }
"""

_REASONS = {
    "wrong": "wrong result",
    "error": "your code raised an error",
    "timeout": "time limit",
    "crash": "your program stopped",
    "not_attempted": "not attempted yet",
    "skipped": "not run",
}

HIDDEN = "(hidden)"

# The phrasings of autograder.checks that quote a reference value (tests/test_feedback.py pins them to the checks).
_WORST_ELEMENT = re.compile(r"(worst element at index \[[^\]\n]*\]: got [^\s,]+), expected [^\s,]+")
_EQUALITY = re.compile(r"^(?P<what>[^\n]*?): expected (?P<expected>.+?), got (?P<got>.+)\.$", re.DOTALL)
_NOT_REFERENCE_VALUES = ("a torch.Tensor",)  # check_is_tensor's wording: a kind of value, not a value


def student_facing(message: str, *, show_expected: bool = False) -> str:
    """A test's feedback with the reference values it quotes replaced by ``(hidden)``.

    Shapes, dtypes, tolerances, error sizes, the worst index and the student's own value stay: they tell the
    student where to look without handing over the answer.
    """
    if show_expected or not message:
        return message
    message = _WORST_ELEMENT.sub(rf"\1, expected {HIDDEN}", message)
    match = _EQUALITY.match(message)
    if match and "\n" not in message and match["expected"] not in _NOT_REFERENCE_VALUES:
        message = f"{match['what']}: got {match['got']}, which is not the expected value {HIDDEN}."
    return message


def student_results(result: SubmissionResult, visible_expected: Collection[str] = ()) -> dict:
    """``results.json`` (Gradescope's schema) as a student may see it: each test's feedback as on the page.

    The file sits beside ``feedback.html`` and is in the format Gradescope shows students, so it must not
    quote the reference's values either. The gradebook keeps every message whole, for instructors.
    """
    data = result.to_gradescope()
    for test in data["tests"]:
        test["output"] = student_facing(test["output"], show_expected=test["extra_data"]["exercise"] in visible_expected)
    return data


def _grade_class(score: float, max_score: float) -> str:
    return "full" if score >= max_score else ("partial" if score > 0 else "none")


def feedback_html(
    result: SubmissionResult,
    hints: Mapping[str, str] | None = None,
    public_output: Mapping[str, str] | None = None,
    visible_expected: Collection[str] = (),
) -> str:
    """The student's page for ``result``.

    ``hints``: exercise → the instructor's hint (``assignment.toml``'s ``[[exercises]] hint``), shown on
    exercises that lost points. ``public_output``: exercise → what the public checks printed for this
    submission. ``visible_expected``: exercises whose expected values the instructor allows students to see.
    """
    hints = hints or {}
    public_output = public_output or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(result.assignment)}: feedback for {escape(result.submission)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(result.assignment)}: feedback for {escape(result.submission)}</h1>",
        f'<div class="total {_grade_class(result.score, result.max_score)}">'
        f"Score: {result.score:g} / {result.max_score:g}</div>",
    ]
    if result.error:
        parts.append(f"<p class='none'>Your submission could not be graded:</p><pre>{escape(result.error)}</pre>")
    for ex in result.exercises:
        failed = [t for t in ex.tests if not t.passed]
        cls = _grade_class(ex.score, ex.max_score)
        parts.append(f"<details{' open' if failed else ''}><summary>{escape(ex.name)}"
                     f'<span class="score {cls}">{ex.score:g} / {ex.max_score:g}</span></summary>')
        if failed and hints.get(ex.name):
            parts.append(f'<div class="hint"><strong>Hint:</strong> {escape(hints[ex.name])}</div>')
        parts.append("<ul>")
        for t in ex.tests:
            mark = "✓" if t.passed else "✗"
            why = "" if t.passed else f" <span class='note'>({_REASONS.get(t.reason, t.reason)})</span>"
            message = student_facing(t.output, show_expected=ex.name in visible_expected)
            detail = f"<pre>{escape(message)}</pre>" if (message and not t.passed) else ""
            parts.append(f"<li>{mark} {escape(t.name)}: {t.score:g} / {t.max_score:g}{why}{detail}</li>")
        parts.append("</ul>")
        if public_output.get(ex.name, "").strip():
            parts.append(f"<h3>Output of the public checks</h3><pre>{escape(public_output[ex.name])}</pre>")
        parts.append("</details>")
    if result.output.strip():
        parts.append(f"<h2>Notes from the grader</h2><pre>{escape(result.output)}</pre>")
    parts.append(f"<p class='note'>Graded by autograder {escape(result.grader_version)} "
                 f"({escape(result.profile)} profile, {escape(result.device)}).</p></body></html>")
    return "\n".join(parts) + "\n"
