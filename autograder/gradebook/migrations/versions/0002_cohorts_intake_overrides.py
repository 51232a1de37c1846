"""Cohorts, late penalties, exercise fingerprints, the intake log and the override audit trail.

Revision ID: 0002
Revises: 0001

A grade is now one per (cohort, assignment, submission); plain grading is cohort "".
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot alter a constraint in place: batch mode copies the table (rows kept) there,
    # and issues plain ALTER TABLE statements on PostgreSQL.
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("cohort", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("student", sa.String(200), nullable=True))
        batch.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("late_penalty", sa.Float, nullable=False, server_default="0"))
        batch.drop_constraint("one_grade_per_submission", type_="unique")
        batch.create_unique_constraint("one_grade_per_submission", ["cohort", "assignment", "submission"])
    op.add_column("exercise_scores", sa.Column("fingerprint", sa.String(64), nullable=True))
    op.create_table(
        "intake",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cohort", sa.String(200), nullable=False),
        sa.Column("assignment", sa.String(200), nullable=False),
        sa.Column("student", sa.String(200), nullable=False),
        sa.Column("stored_path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("original_name", sa.String(500), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("cohort", "assignment", "student", "sha256", "submitted_at", name="collected_once"),
    )
    op.create_table(
        "grade_overrides",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cohort", sa.String(200), nullable=False),
        sa.Column("assignment", sa.String(200), nullable=False),
        sa.Column("student", sa.String(200), nullable=False),
        sa.Column("score", sa.Float, nullable=True),  # NULL: the override is cleared
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(author) > 0", name="override_has_author"),
        sa.CheckConstraint("length(reason) > 0", name="override_has_reason"),
    )
    op.create_index("ix_grade_overrides_key", "grade_overrides", ["cohort", "assignment", "student"])


def downgrade() -> None:
    op.drop_table("grade_overrides")
    op.drop_table("intake")
    op.drop_column("exercise_scores", "fingerprint")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_constraint("one_grade_per_submission", type_="unique")
        batch.create_unique_constraint("one_grade_per_submission", ["assignment", "submission"])
        for column in ("late_penalty", "submitted_at", "student", "cohort"):
            batch.drop_column(column)
