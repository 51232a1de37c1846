"""A cohort's grades as plain data: the one input of the instructor report and the grade exports.

Reports and exports are pure functions of a :class:`CohortView`, so they are
tested on hand-built views without a database; :func:`load_cohort_view` is the
one adapter that reads a view out of the gradebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as _utc_zone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class Student:
    """A roster entry. The Canvas identifiers are optional: exports fall back to ``id`` and ``email``."""

    id: str
    name: str
    email: str = ""
    sis_user_id: str = ""  # Canvas "SIS User ID"; empty means: use ``id``
    sis_login_id: str = ""  # Canvas "SIS Login ID"; empty means: use ``email``
    canvas_id: str = ""  # Canvas's own numeric user id ("ID"); usually unknown, and optional for an import
    section: str = ""


@dataclass(frozen=True)
class AssignmentInfo:
    id: str
    title: str
    max_score: float
    due: datetime | None = None  # timezone-aware
    canvas_id: str = ""  # the Canvas assignment id, when the assignment already exists there


@dataclass(frozen=True)
class TestScore:
    """One hidden test case as the student may see it: its feedback is the student-facing check message."""

    name: str
    score: float
    max_score: float
    passed: bool
    reason: str = "passed"  # passed | wrong | error | timeout | crash | not_attempted | skipped
    output: str = ""


@dataclass(frozen=True)
class ExerciseScore:
    name: str
    score: float
    max_score: float
    tests: tuple[TestScore, ...] = ()

    @property
    def full_marks(self) -> bool:
        return self.score >= self.max_score

    @property
    def passed_tests(self) -> int:
        return sum(t.passed for t in self.tests)

    @property
    def total_tests(self) -> int:
        return len(self.tests)

    @property
    def failures(self) -> tuple[str, ...]:
        """The feedback of each failed test case (its reason when it printed nothing)."""
        return tuple(t.output or t.reason for t in self.tests if not t.passed)


@dataclass(frozen=True)
class StudentGrade:
    """A student's recorded grade for one assignment: the autograder's score, then what policy and people did to it."""

    student_id: str
    assignment: str
    auto_score: float
    max_score: float
    final_score: float
    submission: str = ""  # the submission's name in the gradebook
    late_penalty: float = 0.0  # points taken off for lateness
    override: float | None = None  # a score set by hand, which replaces the computed one
    override_note: str = ""  # who set it and why
    submitted_at: datetime | None = None  # timezone-aware
    graded_at: datetime | None = None
    late: bool = False
    due: datetime | None = None  # the student's own deadline (extension, grace), when not the assignment's due
    error: str | None = None  # set when the submission could not be graded at all
    exercises: tuple[ExerciseScore, ...] = ()
    output: str = ""  # the grader's notes to the student (results.json's top-level output)
    execution_time: float = 0.0


@dataclass(frozen=True)
class CohortView:
    cohort: str
    students: tuple[Student, ...]
    assignments: tuple[AssignmentInfo, ...]
    grades: tuple[StudentGrade, ...]
    timezone: str = "UTC"  # dates are shown in the cohort's own time zone
    unmatched: tuple[str, ...] = ()  # graded submissions whose name matches no roster entry
    _by_key: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assignment_ids = {a.id for a in self.assignments}
        student_ids = {s.id for s in self.students}
        by_key: dict[tuple[str, str], StudentGrade] = {}
        for g in self.grades:
            if g.assignment not in assignment_ids:
                raise ValueError(f"grade of {g.student_id!r} names assignment {g.assignment!r}, which is not "
                                 f"among the view's assignments {sorted(assignment_ids)}")
            if g.student_id not in student_ids:
                raise ValueError(f"grade for {g.student_id!r} in {g.assignment!r}: no such student on the roster; "
                                 "list it in `unmatched` instead")
            if (g.student_id, g.assignment) in by_key:
                raise ValueError(f"two grades for {g.student_id!r} in {g.assignment!r}; a view holds one each")
            by_key[(g.student_id, g.assignment)] = g
        object.__setattr__(self, "_by_key", by_key)

    def assignment(self, assignment_id: str) -> AssignmentInfo:
        for a in self.assignments:
            if a.id == assignment_id:
                return a
        raise KeyError(f"no assignment {assignment_id!r} in cohort {self.cohort!r} "
                       f"(it has: {', '.join(a.id for a in self.assignments) or 'none'})")

    def student(self, student_id: str) -> Student:
        for s in self.students:
            if s.id == student_id:
                return s
        raise KeyError(student_id)

    def grade(self, student_id: str, assignment_id: str) -> StudentGrade | None:
        """The student's grade, or None when they have not submitted."""
        return self._by_key.get((student_id, assignment_id))

    def grades_for(self, assignment_id: str) -> list[StudentGrade]:
        """The assignment's grades, in roster order."""
        return [g for s in self.students if (g := self.grade(s.id, assignment_id)) is not None]

    def not_submitted(self, assignment_id: str) -> list[Student]:
        return [s for s in self.students if self.grade(s.id, assignment_id) is None]

    def time_late(self, grade: StudentGrade) -> timedelta | None:
        """How long after the due date the grade's submission came; None when on time or no dates are known."""
        due = grade.due or self.assignment(grade.assignment).due
        if due is None or grade.submitted_at is None or grade.submitted_at <= due:
            return None
        return grade.submitted_at - due


# --- the adapter from the gradebook -------------------------------------------------------------------------------


def _field(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that ``obj`` has (a dataclass, a row, or a mapping)."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def students_from_roster(roster: Iterable[Any]) -> tuple[Student, ...]:
    """Roster entries (objects or mappings with id, name, email and optional Canvas fields) as :class:`Student`."""
    return tuple(
        Student(
            id=str(_field(r, "id")),
            name=str(_field(r, "name", default="") or ""),
            email=str(_field(r, "email", default="") or ""),
            sis_user_id=str(_field(r, "sis_user_id", "sis_id", default="") or ""),
            sis_login_id=str(_field(r, "sis_login_id", default="") or ""),
            canvas_id=str(_field(r, "canvas_id", default="") or ""),
            section=str(_field(r, "section", default="") or ""),
        )
        for r in roster
    )


def load_cohort_view(
    engine: Engine,
    cohort: str,
    roster: Iterable[Any],
    assignments: Sequence[AssignmentInfo],
    *,
    timezone: str = "UTC",
    deadline: Callable[[str, str], datetime | None] | None = None,
) -> CohortView:
    """Read ``cohort``'s grades of ``assignments`` out of the gradebook, late penalties and overrides applied.

    ``deadline(student, assignment)`` is the moment after which a submission counts as late (the student's
    extension and the grace period included); by default, the assignment's due date. A grade whose student is
    not on the roster is named in ``unmatched`` rather than dropped silently. Where one student has several
    grades of an assignment, the latest submitted counts.
    """
    from autograder.gradebook import final_grades, grades_for

    students = students_from_roster(roster)
    on_roster = {s.id for s in students}
    by_student: dict[tuple[str, str], StudentGrade] = {}
    unmatched: list[str] = []
    for info in assignments:
        rows = {row.submission: row for row in grades_for(engine, info.id, cohort=cohort)}
        for final in final_grades(engine, cohort, info.id):
            if final.student not in on_roster:
                unmatched.append(f"{info.id}/{final.submission}")
                continue
            row = rows.get(final.submission)
            due = deadline(final.student, info.id) if deadline else info.due
            grade = StudentGrade(
                student_id=final.student,
                assignment=info.id,
                submission=final.submission,
                auto_score=final.auto_score,
                max_score=final.max_score,
                final_score=final.final_score,
                late_penalty=final.late_penalty,
                override=final.override,
                override_note=(f"{final.override_author}: {final.override_reason}" if final.override is not None
                               else ""),
                submitted_at=final.submitted_at,
                graded_at=final.graded_at,
                late=bool(final.submitted_at and due and final.submitted_at > due) or final.late_penalty > 0,
                due=due if due != info.due else None,
                error=row.error if row is not None else None,
                exercises=_exercises(row) if row is not None else (),
                output=row.feedback if row is not None else "",
                execution_time=row.execution_time if row is not None else 0.0,
            )
            key = (grade.student_id, grade.assignment)
            kept = by_student.get(key)
            if kept is None or _moment(grade) >= _moment(kept):
                by_student[key] = grade
    return CohortView(cohort=cohort, students=students, assignments=tuple(assignments),
                      grades=tuple(by_student.values()), timezone=timezone, unmatched=tuple(unmatched))


def _moment(grade: StudentGrade) -> datetime:
    return grade.submitted_at or grade.graded_at or datetime.min.replace(tzinfo=_utc_zone.utc)


def _exercises(row: Any) -> tuple[ExerciseScore, ...]:
    """A gradebook row's exercises, each with its test cases, in the order they were graded."""
    tests: dict[str, list[TestScore]] = {}
    for t in row.tests:
        tests.setdefault(t.exercise, []).append(TestScore(
            name=t.name, score=t.score, max_score=t.max_score, passed=t.status == "passed", reason=t.reason,
            output=t.output or ""))
    return tuple(ExerciseScore(e.exercise, e.score, e.max_score, tuple(tests.get(e.exercise, ())))
                 for e in sorted(row.exercises, key=lambda e: e.id))


def view_of_cohort(engine: Engine, cohort: Any, course_assignments: Sequence[Any]) -> CohortView:
    """The view of a loaded cohort (``autograder.cohort.config.Cohort``): its roster, dates, extensions and grace.

    ``course_assignments`` are the course's :class:`~autograder.authoring.assignment.Assignment` objects, for
    titles and points; the cohort's assignments missing from them are reported by name.
    """
    by_id = {a.id: a for a in course_assignments}
    missing = [slot.id for slot in cohort.assignments if slot.id not in by_id]
    if missing:
        raise KeyError(f"cohort {cohort.name} lists assignments the course does not have: {', '.join(missing)}")
    infos = tuple(
        AssignmentInfo(id=slot.id, title=by_id[slot.id].title, due=slot.due,
                       max_score=by_id[slot.id].max_score + by_id[slot.id].free_points,
                       canvas_id=str(getattr(slot, "canvas_id", "") or ""))
        for slot in cohort.assignments
    )
    grace = timedelta(minutes=cohort.late_policy.grace_minutes)
    return load_cohort_view(
        engine, cohort.name, cohort.roster, infos, timezone=str(cohort.timezone),
        deadline=lambda student, assignment: cohort.due_for(student, assignment) + grace,
    )
