"""The gradebook: one row per (assignment, submission), with its exercises and tests.

SQLite through SQLAlchemy is the embedded default; any SQLAlchemy URL works.
Regrading a submission replaces its row (and its children) in one transaction,
so the book never holds two grades for one submission, nor half of one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from autograder.grade.results import SubmissionResult


class Base(DeclarativeBase):
    pass


class SubmissionRow(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("assignment", "submission", name="one_grade_per_submission"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment: Mapped[str] = mapped_column(String(200), index=True)
    submission: Mapped[str] = mapped_column(String(500))
    submission_sha256: Mapped[str] = mapped_column(String(64))
    bundle_hash: Mapped[str] = mapped_column(String(64))
    grader_version: Mapped[str] = mapped_column(String(50))
    profile: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    execution_time: Mapped[float] = mapped_column(Float)
    feedback: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    graded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    exercises: Mapped[list["ExerciseRow"]] = relationship(
        back_populates="submission_row", cascade="all, delete-orphan", passive_deletes=True
    )
    tests: Mapped[list["TestRow"]] = relationship(
        back_populates="submission_row", cascade="all, delete-orphan", passive_deletes=True
    )


class ExerciseRow(Base):
    __tablename__ = "exercise_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    exercise: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    submission_row: Mapped[SubmissionRow] = relationship(back_populates="exercises")


class TestRow(Base):
    __tablename__ = "test_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    exercise: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(20))
    output: Mapped[str] = mapped_column(Text, default="")
    submission_row: Mapped[SubmissionRow] = relationship(back_populates="tests")


def database_url(path_or_url: str | Path) -> str:
    text = str(path_or_url)
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def open_gradebook(path_or_url: str | Path) -> Engine:
    url = database_url(path_or_url)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        if engine.url.database:  # a new gradebook may live in a folder not made yet
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    Base.metadata.create_all(engine)
    return engine


def record(engine: Engine, result: SubmissionResult) -> None:
    """Insert or replace the grade of ``result``'s submission, atomically."""
    with Session(engine) as session, session.begin():
        session.execute(
            delete(SubmissionRow).where(
                SubmissionRow.assignment == result.assignment, SubmissionRow.submission == result.submission
            )
        )
        row = SubmissionRow(
            assignment=result.assignment,
            submission=result.submission,
            submission_sha256=result.submission_sha256,
            bundle_hash=result.bundle_hash,
            grader_version=result.grader_version,
            profile=result.profile,
            device=result.device,
            score=result.score,
            max_score=result.max_score,
            execution_time=result.execution_time,
            feedback=result.output,
            error=result.error,
            graded_at=datetime.now(timezone.utc),
        )
        row.exercises = [ExerciseRow(exercise=e.name, score=e.score, max_score=e.max_score) for e in result.exercises]
        row.tests = [
            TestRow(
                exercise=t.exercise,
                name=t.name,
                score=t.score,
                max_score=t.max_score,
                status=t.status,
                reason=t.reason,
                output=t.output,
            )
            for e in result.exercises
            for t in e.tests
        ]
        session.add(row)


def grades_for(engine: Engine, assignment: str) -> list[SubmissionRow]:
    with Session(engine) as session:
        rows = session.scalars(
            select(SubmissionRow).where(SubmissionRow.assignment == assignment).order_by(SubmissionRow.submission)
        ).all()
        for row in rows:  # load children before the session closes
            _ = list(row.exercises), list(row.tests)
        session.expunge_all()
        return list(rows)


def graded_versions(engine: Engine, assignment: str) -> dict[str, tuple[str, str]]:
    """Submission name → (submission hash, bundle hash) of its recorded grade: what a resumed batch can skip."""
    with Session(engine) as session:
        rows = session.execute(
            select(SubmissionRow.submission, SubmissionRow.submission_sha256, SubmissionRow.bundle_hash).where(
                SubmissionRow.assignment == assignment, SubmissionRow.error.is_(None)
            )
        ).all()
    return {name: (sha, bundle) for name, sha, bundle in rows}
