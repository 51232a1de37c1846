"""Grades out of the gradebook: Canvas's gradebook import CSV, a plain CSV, Gradescope results.json files.

Each export is a pure function of a :class:`~autograder.reports.cohort_view.CohortView`.
A student who has not submitted gets an empty cell, never a silent 0: an empty
cell leaves Canvas's grade alone, while a 0 would overwrite it. Instructors who
do want zeros ask for them (``missing_as_zero``).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from autograder.reports.cohort_view import CohortView, StudentGrade

# Canvas's gradebook import identifies students by these columns, in this order, before the assignment columns.
CANVAS_STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_POSSIBLE = "    Points Possible"  # the label of Canvas's second row, leading spaces included

PLAIN_COLUMNS = (
    "cohort", "assignment", "student_id", "name", "email", "submission", "auto_score", "late_penalty", "override",
    "override_note", "final_score", "max_score", "submitted_at", "late", "graded_at", "error",
)


def _number(value: float | None) -> str:
    """A score as Canvas and spreadsheets read it: no trailing zeros, no float noise."""
    if value is None:
        return ""
    return f"{round(value, 4):g}"


def _text(value: str) -> str:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _selected(view: CohortView, assignment: str | None) -> list:
    return [view.assignment(assignment)] if assignment else list(view.assignments)


def canvas_column(assignment) -> str:
    """``Title (canvas id)`` updates that Canvas assignment; a bare title makes Canvas create a new one."""
    return f"{assignment.title} ({assignment.canvas_id})" if assignment.canvas_id else assignment.title


def canvas_csv(view: CohortView, assignment: str | None = None, *, missing_as_zero: bool = False) -> str:
    """Canvas's gradebook import: the five student columns, one column of final scores per assignment.

    The second row gives each assignment's points possible, as in Canvas's own export. Students are matched
    by SIS User ID (the roster id unless the roster gives one) or SIS Login ID (the email unless given).
    """
    assignments = _selected(view, assignment)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*CANVAS_STUDENT_COLUMNS, *(canvas_column(a) for a in assignments)])
    writer.writerow([CANVAS_POINTS_POSSIBLE, "", "", "", "", *(_number(a.max_score) for a in assignments)])
    for student in view.students:
        cells = []
        for a in assignments:
            grade = view.grade(student.id, a.id)
            cells.append(_number(grade.final_score) if grade else ("0" if missing_as_zero else ""))
        writer.writerow([
            _text(student.name), student.canvas_id, student.sis_user_id or student.id,
            student.sis_login_id or student.email, _text(student.section), *cells,
        ])
    return buffer.getvalue()


def _local(when: datetime | None, tz: ZoneInfo) -> str:
    return when.astimezone(tz).isoformat(timespec="seconds") if when else ""


def plain_csv(view: CohortView, assignment: str | None = None, *, missing_as_zero: bool = False) -> str:
    """One row per student and assignment: the autograder's score, the late penalty, any override, the final score."""
    tz = ZoneInfo(view.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PLAIN_COLUMNS)
    for a in _selected(view, assignment):
        for student in view.students:
            g = view.grade(student.id, a.id)
            if g is None:
                final = "0" if missing_as_zero else ""
                writer.writerow([view.cohort, a.id, student.id, _text(student.name), _text(student.email), "", "", "",
                                 "", "",
                                 final, _number(a.max_score), "", "", "", "not submitted"])
                continue
            writer.writerow([
                view.cohort, a.id, student.id, _text(student.name), _text(student.email), _text(g.submission),
                _number(g.auto_score), _number(g.late_penalty), _number(g.override), _text(g.override_note),
                _number(g.final_score), _number(g.max_score), _local(g.submitted_at, tz), "yes" if g.late else "no",
                _local(g.graded_at, tz), _text(g.error or ""),
            ])
    return buffer.getvalue()


def gradescope_result(view: CohortView, grade: StudentGrade) -> dict:
    """Gradescope's results.json for one graded submission, scored with the final score.

    The test entries are the autograder's own (student-facing feedback only); when the final score differs from
    the tests' sum (a late penalty or an override), the top-level ``score`` says so and ``output`` explains why.
    """
    from autograder.reports.feedback import student_facing

    notes = []
    if grade.late_penalty:
        notes.append(f"Late submission: {_number(grade.late_penalty)} point(s) taken off.")
    if grade.override is not None:
        notes.append(f"Score set by your instructor to {_number(grade.override)}"
                     + (f": {grade.override_note}" if grade.override_note else "."))
    output = "\n".join([*notes, grade.output] if grade.output else notes)
    return {
        "score": round(grade.final_score, 6),
        "max_score": round(grade.max_score, 6),
        "execution_time": round(grade.execution_time, 3),
        "output": output,
        "visibility": "visible",
        "tests": [
            {
                "name": f"{ex.name}: {t.name}",
                "score": round(t.score, 6),
                "max_score": round(t.max_score, 6),
                "status": "passed" if t.passed else "failed",
                "output": student_facing(t.output),
                "visibility": "visible",
                "extra_data": {"exercise": ex.name, "reason": t.reason},
            }
            for ex in grade.exercises
            for t in ex.tests
        ],
        "extra_data": {
            "cohort": view.cohort,
            "assignment": grade.assignment,
            "student": grade.student_id,
            "submission": grade.submission,
            "auto_score": grade.auto_score,
            "late_penalty": grade.late_penalty,
            "override": grade.override,
            "submitted_at": grade.submitted_at.isoformat() if grade.submitted_at else None,
            "error": grade.error,
        },
    }


def gradescope_results(view: CohortView, assignment: str | None = None) -> dict[PurePosixPath, dict]:
    """``<assignment>/<student id>/results.json`` → its content, for every graded submission."""
    return {
        PurePosixPath(safe_path_part(g.assignment), safe_path_part(g.student_id), "results.json"):
            gradescope_result(view, g)
        for a in _selected(view, assignment)
        for g in view.grades_for(a.id)
    }


def safe_path_part(name: str) -> str:
    """A roster id or assignment id as one path component: no separators, no dot-dot, nothing hidden."""
    cleaned = "".join(c if (c.isalnum() or c in "-_.@+") else "_" for c in name).lstrip(".")
    return cleaned or "_"
