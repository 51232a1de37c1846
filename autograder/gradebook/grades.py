"""Recording grades and reading them back.

A grade is one row per (cohort, assignment, submission) with its exercises
and tests. Regrading replaces the row's values and children in one
transaction, so the book never holds two grades for one submission, nor half
of one, however many processes record at once.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from autograder.grade.results import SubmissionResult
from autograder.gradebook.schema import ExerciseRow, SubmissionRow, TestRow
from autograder.gradebook.store import GradebookError, require_aware, write_transaction

GRADE_KEY = ("cohort", "assignment", "submission")


def record(
    engine: Engine,
    result: SubmissionResult,
    *,
    cohort: str = "",
    student: str | None = None,
    submitted_at: datetime | None = None,
    late_penalty: float = 0.0,
) -> None:
    """Insert or replace the grade of ``result``'s submission in ``cohort``, atomically.

    ``late_penalty`` is in points, deducted from the auto score when the final
    grade is worked out (see :func:`autograder.gradebook.final_grades`).
    """
    require_aware(submitted_at, "submitted_at")
    if late_penalty < 0:
        raise GradebookError(f"late_penalty is points deducted and cannot be negative, got {late_penalty}")
    values = {
        "cohort": cohort,
        "assignment": result.assignment,
        "submission": result.submission,
        "student": student,
        "submitted_at": submitted_at,
        "submission_sha256": result.submission_sha256,
        "bundle_hash": result.bundle_hash,
        "grader_version": result.grader_version,
        "profile": result.profile,
        "device": result.device,
        "score": result.score,
        "max_score": result.max_score,
        "late_penalty": late_penalty,
        "execution_time": result.execution_time,
        "feedback": result.output,
        "error": result.error,
        "graded_at": datetime.now(timezone.utc),
    }
    exercises = [
        {"exercise": e.name, "score": e.score, "max_score": e.max_score,
         "fingerprint": getattr(e, "fingerprint", "") or None}
        for e in result.exercises
    ]
    tests = [
        {"exercise": t.exercise, "name": t.name, "score": t.score, "max_score": t.max_score,
         "status": t.status, "reason": t.reason, "output": t.output}
        for e in result.exercises
        for t in e.tests
    ]
    with write_transaction(engine) as conn:
        grade_id = _upsert_grade(conn, values)
        conn.execute(delete(ExerciseRow).where(ExerciseRow.submission_id == grade_id))
        conn.execute(delete(TestRow).where(TestRow.submission_id == grade_id))
        if exercises:
            conn.execute(insert(ExerciseRow.__table__), [{**e, "submission_id": grade_id} for e in exercises])
        if tests:
            conn.execute(insert(TestRow.__table__), [{**t, "submission_id": grade_id} for t in tests])


def _upsert_grade(conn: Connection, values: dict) -> int:
    """Insert the grade row, or update the one already there; return its id.

    One statement, not delete-then-insert: on PostgreSQL two transactions
    replacing the same grade would both find nothing to delete and the second
    insert would break the unique constraint. ``ON CONFLICT DO UPDATE`` makes
    the second wait for the first and then update its row, which stays locked
    until this transaction has replaced the children too.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite  # open_gradebook allows only these two
    stmt = dialect.insert(SubmissionRow.__table__).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(GRADE_KEY),
        set_={name: stmt.excluded[name] for name in values if name not in GRADE_KEY},
    )
    return conn.execute(stmt.returning(SubmissionRow.__table__.c.id)).scalar_one()


def grades_for(engine: Engine, assignment: str, cohort: str | None = None) -> list[SubmissionRow]:
    """Every grade of ``assignment`` (in ``cohort``; ``None``: every cohort), exercises and tests loaded."""
    query = select(SubmissionRow).where(SubmissionRow.assignment == assignment)
    if cohort is not None:
        query = query.where(SubmissionRow.cohort == cohort)
    query = query.options(selectinload(SubmissionRow.exercises), selectinload(SubmissionRow.tests))
    with Session(engine) as session:
        rows = session.scalars(query.order_by(SubmissionRow.cohort, SubmissionRow.submission)).all()
        session.expunge_all()
        return list(rows)


def graded_versions(engine: Engine, assignment: str, cohort: str = "") -> dict[str, tuple[str, str]]:
    """Submission name → (submission hash, bundle hash) of its recorded grade: what a resumed batch can skip."""
    with Session(engine) as session:
        rows = session.execute(
            select(SubmissionRow.submission, SubmissionRow.submission_sha256, SubmissionRow.bundle_hash).where(
                SubmissionRow.cohort == cohort, SubmissionRow.assignment == assignment, SubmissionRow.error.is_(None)
            )
        ).all()
    return {name: (sha, bundle) for name, sha, bundle in rows}
