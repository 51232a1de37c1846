"""The intake log: every submission file collected for a cohort, kept for good.

Collecting the same download twice (same student, bytes and submission time)
adds nothing, so collection can be re-run at will, from several processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from autograder.gradebook.schema import INTAKE_SOURCES, IntakeRow
from autograder.gradebook.store import GradebookError, require_aware, write_transaction

_ROWS_PER_STATEMENT = 200  # well under SQLite's limit on bound parameters


@dataclass(frozen=True)
class IntakeItem:
    cohort: str
    assignment: str
    student: str  # roster id
    stored_path: str  # where the collected file is kept
    sha256: str
    submitted_at: datetime  # timezone-aware; the platform's time, or the file's for a folder
    source: str  # folder | canvas | gradescope
    original_name: str  # the file's name as handed in


def record_intake(engine: Engine, items: Iterable[IntakeItem]) -> int:
    """Log collected files; returns how many were new (those collected before are left as they are)."""
    items = list(items)
    for item in items:
        _check(item)
    # Sorted, so that two processes logging overlapping batches insert in the same order and
    # PostgreSQL never finds them waiting on each other's rows (a deadlock).
    items.sort(key=lambda i: (i.cohort, i.assignment, i.student, i.sha256, i.submitted_at.astimezone(timezone.utc)))
    collected_at = datetime.now(timezone.utc)
    added = 0
    with write_transaction(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for start in range(0, len(items), _ROWS_PER_STATEMENT):
            rows = [{**vars(i), "collected_at": collected_at} for i in items[start:start + _ROWS_PER_STATEMENT]]
            stmt = dialect.insert(IntakeRow.__table__).values(rows).on_conflict_do_nothing()
            # Counted from RETURNING: psycopg reports no rowcount for a many-row INSERT.
            added += len(conn.execute(stmt.returning(IntakeRow.__table__.c.id)).all())
    return added


def _check(item: IntakeItem) -> None:
    require_aware(item.submitted_at, f"submitted_at of {item.student}'s {item.original_name!r}")
    if item.source not in INTAKE_SOURCES:
        raise GradebookError(f"intake source {item.source!r} is not one of {', '.join(INTAKE_SOURCES)}")
    empty = [name for name in ("cohort", "assignment", "student", "sha256") if not getattr(item, name)]
    if empty:
        raise GradebookError(f"an intake item needs {', '.join(empty)}: got {item}")


def intake_for(engine: Engine, cohort: str, assignment: str, student: str | None = None) -> list[IntakeItem]:
    """What was collected for ``assignment`` in ``cohort`` (one student's, if named), by student then time."""
    table = IntakeRow.__table__
    query = select(*(table.c[f.name] for f in fields(IntakeItem))).where(
        table.c.cohort == cohort, table.c.assignment == assignment
    )
    if student is not None:
        query = query.where(table.c.student == student)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(table.c.student, table.c.submitted_at, table.c.id)).all()
    return [IntakeItem(*row) for row in rows]
