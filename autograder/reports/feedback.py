"""A student's feedback report: one self-contained HTML page per graded submission.

It shows what the student can act on: each exercise's score and, for every
failed test case, the feedback the checks wrote in student terms (shape, max
error, worst index). Hidden test code and expected values are never in a
result, so they cannot reach the page.
"""

from __future__ import annotations

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
"""

_REASONS = {
    "wrong": "wrong result",
    "error": "your code raised an error",
    "timeout": "time limit",
    "crash": "your program stopped",
    "not_attempted": "not attempted yet",
    "skipped": "not run",
}


def _grade_class(score: float, max_score: float) -> str:
    return "full" if score >= max_score else ("partial" if score > 0 else "none")


def feedback_html(result: SubmissionResult) -> str:
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
                     f'<span class="score {cls}">{ex.score:g} / {ex.max_score:g}</span></summary><ul>')
        for t in ex.tests:
            mark = "✓" if t.passed else "✗"
            why = "" if t.passed else f" <span class='note'>({_REASONS.get(t.reason, t.reason)})</span>"
            detail = f"<pre>{escape(t.output)}</pre>" if (t.output and not t.passed) else ""
            parts.append(f"<li>{mark} {escape(t.name)}: {t.score:g} / {t.max_score:g}{why}{detail}</li>")
        parts.append("</ul></details>")
    if result.output.strip():
        parts.append(f"<h2>Notes from the grader</h2><pre>{escape(result.output)}</pre>")
    parts.append(f"<p class='note'>Graded by autograder {escape(result.grader_version)} "
                 f"({escape(result.profile)} profile, {escape(result.device)}).</p></body></html>")
    return "\n".join(parts) + "\n"
