"""The gradebook: grades with their exercises and tests, the intake log, overrides and final grades.

SQLite is the embedded default (a path); PostgreSQL works through a URL.
``open_gradebook`` creates or migrates the schema (alembic, ``migrations/``).
Every write is one transaction, safe with several grading processes at once.
"""

from autograder.gradebook.audit import FinalGrade, Override, audit_trail, final_grades, final_score, override_grade
from autograder.gradebook.grades import grades_for, graded_versions, record
from autograder.gradebook.intake import IntakeItem, intake_for, record_intake
from autograder.gradebook.schema import Base, ExerciseRow, IntakeRow, OverrideRow, SubmissionRow, TestRow
from autograder.gradebook.store import GradebookError, database_url, open_gradebook

__all__ = [
    "Base", "ExerciseRow", "FinalGrade", "GradebookError", "IntakeItem", "IntakeRow", "Override", "OverrideRow",
    "SubmissionRow", "TestRow", "audit_trail", "database_url", "final_grades", "final_score", "grades_for",
    "graded_versions", "intake_for", "open_gradebook", "override_grade", "record", "record_intake",
]
