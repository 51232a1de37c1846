"""Manual overrides with their audit trail, and the final grade they lead to.

An override is never edited or deleted: changing or clearing one appends a
row naming who did it, when and why, and the latest row is the one in force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.engine import Engine

from autograder.gradebook.schema import OverrideRow, SubmissionRow
from autograder.gradebook.store import GradebookError, write_transaction


@dataclass(frozen=True)
class Override:
    cohort: str
    assignment: str
    student: str
    score: float | None  # None: the override before this one is cleared
    author: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class FinalGrade:
    cohort: str
    assignment: str
    student: str  # the roster id, or the submission's name for a grade recorded without one
    submission: str
    auto_score: float
    max_score: float
    late_penalty: float
    override: float | None  # the override in force, if any
    override_author: str | None
    override_reason: str | None
    final_score: float
    submitted_at: datetime | None
    graded_at: datetime


def final_score(auto_score: float, late_penalty: float, override: float | None) -> float:
    """The override where one is in force; otherwise the auto score less the late penalty, never below 0."""
    return round(override if override is not None else max(0.0, auto_score - late_penalty), 6)


def _grade_student() -> ColumnElement[str]:
    """Whom a grade belongs to: its roster id, or for plain grading the submission's name."""
    return func.coalesce(SubmissionRow.student, SubmissionRow.submission)


def override_grade(
    engine: Engine, cohort: str, assignment: str, student: str, score: float | None, author: str, reason: str
) -> None:
    """Set ``student``'s grade by hand (``score=None`` clears the override), recording who, when and why."""
    author, reason = (author or "").strip(), (reason or "").strip()
    if not author:
        raise GradebookError("an override needs its author: who is changing this grade?")
    if not reason:
        raise GradebookError(f"an override needs a reason (it goes in the audit trail): why is {author} "
                             f"changing {student}'s grade for {assignment}?")
    with write_transaction(engine) as conn:
        max_scores = conn.execute(
            select(SubmissionRow.max_score).where(
                SubmissionRow.cohort == cohort, SubmissionRow.assignment == assignment, _grade_student() == student
            )
        ).scalars().all()
        if not max_scores:
            raise GradebookError(
                f"{student!r} has no grade for {assignment!r} in cohort {cohort!r} to override: "
                "grade their submission first (and check the spelling of all three)"
            )
        if score is not None and not (math.isfinite(score) and 0 <= score <= max(max_scores)):
            raise GradebookError(
                f"override score {score} for {student!r} is outside 0..{max(max_scores):g}, "
                f"the range of {assignment!r}; an override is cleared with no score (the command line's --clear)"
            )
        if score is None and _latest_override_score(conn, cohort, assignment, student) is None:
            raise GradebookError(f"{student!r} has no override of {assignment!r} in force in cohort {cohort!r}: "
                                 "nothing to clear")
        conn.execute(
            insert(OverrideRow.__table__).values(
                cohort=cohort, assignment=assignment, student=student, score=score, author=author,
                reason=reason, created_at=datetime.now(timezone.utc),
            )
        )


def _latest_override_score(conn, cohort: str, assignment: str, student: str) -> float | None:
    """The score of the override in force for one student (None: none ever, or the latest cleared it)."""
    table = OverrideRow.__table__
    latest = conn.execute(
        select(table.c.score).where(table.c.cohort == cohort, table.c.assignment == assignment,
                                    table.c.student == student).order_by(table.c.id.desc()).limit(1)
    ).first()
    return None if latest is None else latest.score


def audit_trail(engine: Engine, cohort: str, assignment: str | None = None, student: str | None = None
                ) -> list[Override]:
    """Every override in ``cohort`` (of one assignment, one student, if named), oldest first."""
    table = OverrideRow.__table__
    query = select(table.c.cohort, table.c.assignment, table.c.student, table.c.score, table.c.author,
                   table.c.reason, table.c.created_at).where(table.c.cohort == cohort)
    if assignment is not None:
        query = query.where(table.c.assignment == assignment)
    if student is not None:
        query = query.where(table.c.student == student)
    with engine.connect() as conn:
        # By id: the order the rows were written, which clocks on several machines cannot promise.
        return [Override(*row) for row in conn.execute(query.order_by(table.c.id))]


def final_grades(engine: Engine, cohort: str, assignment: str | None = None) -> list[FinalGrade]:
    """Each grade in ``cohort`` with its late penalty and override applied, by assignment then student."""
    t = SubmissionRow.__table__
    owner = _grade_student().label("owner")
    grades = select(t.c.cohort, t.c.assignment, owner, t.c.submission, t.c.score, t.c.max_score, t.c.late_penalty,
                    t.c.submitted_at, t.c.graded_at).where(t.c.cohort == cohort)
    if assignment is not None:
        grades = grades.where(t.c.assignment == assignment)
    with engine.connect() as conn:
        rows = conn.execute(grades.order_by(t.c.assignment, owner, t.c.submission)).all()
    in_force = _overrides_in_force(audit_trail(engine, cohort, assignment))
    finals = []
    for row in rows:
        override = in_force.get((row.assignment, row.owner))
        finals.append(FinalGrade(
            cohort=row.cohort, assignment=row.assignment, student=row.owner, submission=row.submission,
            auto_score=row.score, max_score=row.max_score, late_penalty=row.late_penalty,
            override=override.score if override else None,
            override_author=override.author if override else None,
            override_reason=override.reason if override else None,
            final_score=final_score(row.score, row.late_penalty, override.score if override else None),
            submitted_at=row.submitted_at, graded_at=row.graded_at,
        ))
    return finals


def _overrides_in_force(trail: list[Override]) -> dict[tuple[str, str], Override]:
    """(assignment, student) → the override in force: the latest one, unless the latest cleared it."""
    latest = {(o.assignment, o.student): o for o in trail}  # the trail is oldest first: later rows win
    return {key: o for key, o in latest.items() if o.score is not None}
