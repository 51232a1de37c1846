"""The gradebook's tables, as the newest migration leaves them.

The migrations under ``migrations/versions`` are the schema's history and
create these tables; this module describes them to SQLAlchemy for reading
and writing. ``tests/test_gradebook.py`` checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

INTAKE_SOURCES = ("folder", "canvas", "gradescope")


class UTCDateTime(TypeDecorator):
    """A timezone-aware time, kept in UTC.

    SQLite stores no offset, so every time is written in UTC and read back
    as UTC; PostgreSQL's ``timestamptz`` gets the same aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # the public functions refuse these with a clear message first
            raise ValueError(f"a naive datetime ({value}) cannot be stored: give it a timezone")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class SubmissionRow(Base):
    """One grade per (cohort, assignment, submission); ``cohort`` is "" for plain grading.

    "" rather than NULL because NULLs never collide in a PostgreSQL unique
    constraint, which would let one submission hold two grades.
    """

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("cohort", "assignment", "submission", name="one_grade_per_submission"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort: Mapped[str] = mapped_column(String(200), default="", server_default="")
    assignment: Mapped[str] = mapped_column(String(200), index=True)
    submission: Mapped[str] = mapped_column(String(500))
    student: Mapped[str | None] = mapped_column(String(200), nullable=True)  # roster id, where one is known
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submission_sha256: Mapped[str] = mapped_column(String(64))
    bundle_hash: Mapped[str] = mapped_column(String(64))
    grader_version: Mapped[str] = mapped_column(String(50))
    profile: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)  # the auto score, before any late penalty
    max_score: Mapped[float] = mapped_column(Float)
    late_penalty: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # points deducted
    execution_time: Mapped[float] = mapped_column(Float)
    feedback: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    graded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    exercises: Mapped[list["ExerciseRow"]] = relationship(
        back_populates="submission_row", cascade="all, delete-orphan", passive_deletes=True, order_by="ExerciseRow.id"
    )
    tests: Mapped[list["TestRow"]] = relationship(
        back_populates="submission_row", cascade="all, delete-orphan", passive_deletes=True, order_by="TestRow.id"
    )


class ExerciseRow(Base):
    __tablename__ = "exercise_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    exercise: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    # A hash of what grades this exercise (its tests, reference, data): regrade only what a test fix changed.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
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


class IntakeRow(Base):
    """Every file collected for a cohort, never deleted; the same download collected twice is one row."""

    __tablename__ = "intake"
    __table_args__ = (
        UniqueConstraint("cohort", "assignment", "student", "sha256", "submitted_at", name="collected_once"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort: Mapped[str] = mapped_column(String(200))
    assignment: Mapped[str] = mapped_column(String(200))
    student: Mapped[str] = mapped_column(String(200))
    stored_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20))  # folder | canvas | gradescope
    original_name: Mapped[str] = mapped_column(String(500))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OverrideRow(Base):
    """The audit trail of manual grades: rows are only ever added; a NULL score clears the override."""

    __tablename__ = "grade_overrides"
    __table_args__ = (
        CheckConstraint("length(author) > 0", name="override_has_author"),
        CheckConstraint("length(reason) > 0", name="override_has_reason"),
        Index("ix_grade_overrides_key", "cohort", "assignment", "student"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort: Mapped[str] = mapped_column(String(200))
    assignment: Mapped[str] = mapped_column(String(200))
    student: Mapped[str] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
