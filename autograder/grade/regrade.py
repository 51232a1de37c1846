"""Regrading after a fix: which exercises a change touched, and what the new grades would be.

Pure functions over recorded grades (gradebook rows) and fresh results. The
command (``autograder regrade``) grades only the stale exercises, merges them
into the recorded grade, shows the changes, and records them only once the
instructor agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autograder.grade.results import ExerciseResult, SubmissionResult, TestOutcome


def recorded_result(row) -> SubmissionResult:
    """A gradebook row (``SubmissionRow`` with its exercises and tests) as the result it recorded."""
    exercises = []
    for ex in row.exercises:
        tests = [
            TestOutcome(t.exercise, t.name, t.score, t.max_score, t.status == "passed", t.output, t.reason)
            for t in row.tests
            if t.exercise == ex.exercise
        ]
        exercises.append(ExerciseResult(ex.exercise, ex.max_score, tests, ex.fingerprint or ""))
    result = SubmissionResult(
        assignment=row.assignment, submission=row.submission, submission_sha256=row.submission_sha256,
        bundle_hash=row.bundle_hash, grader_version=row.grader_version, profile=row.profile, device=row.device,
        exercises=exercises, output=row.feedback or "", execution_time=row.execution_time, error=row.error,
    )
    # Free points are not stored apart: they are what the total holds beyond the exercises.
    result.free_points = round(row.score - sum(e.score for e in exercises), 6)
    return result


def stale_exercises(recorded: SubmissionResult, fingerprints: dict[str, str], only: list[str] | None = None) -> list[str]:
    """The exercises to grade again, in the assignment's order.

    With ``only``, exactly those (the instructor asked). Otherwise every
    exercise whose recorded fingerprint differs from what grades it now, or
    that has no recorded result at all.
    """
    if only:
        return [name for name in fingerprints if name in only]
    have = {e.name: e.fingerprint for e in recorded.exercises}
    if recorded.error:
        return list(fingerprints)  # it was never graded properly: grade all of it
    return [name for name, fp in fingerprints.items() if have.get(name) != fp]


def merged(recorded: SubmissionResult, fresh: SubmissionResult, order: list[str]) -> SubmissionResult:
    """The recorded grade with ``fresh``'s exercises in place of its own; every other score untouched."""
    new = {e.name: e for e in fresh.exercises}
    old = {e.name: e for e in recorded.exercises}
    exercises = [new.get(name) or old[name] for name in order if name in new or name in old]
    return replace(
        recorded, exercises=exercises, bundle_hash=fresh.bundle_hash, grader_version=fresh.grader_version,
        output=fresh.output, execution_time=fresh.execution_time, error=fresh.error, sandbox=fresh.sandbox,
    )


@dataclass(frozen=True)
class GradeChange:
    submission: str
    exercise_changes: tuple[tuple[str, float, float], ...]  # (exercise, before, after)
    before: float
    after: float


def grade_change(before: SubmissionResult, after: SubmissionResult) -> GradeChange | None:
    """What differs between two grades of one submission, or None when no score moved."""
    old = {e.name: e.score for e in before.exercises}
    changes = tuple(
        (e.name, old.get(e.name, 0.0), e.score) for e in after.exercises if abs(old.get(e.name, 0.0) - e.score) > 1e-9
    )
    if not changes and abs(before.score - after.score) <= 1e-9:
        return None
    return GradeChange(after.submission, changes, before.score, after.score)
