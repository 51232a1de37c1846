"""A small synthetic cohort for the report and export tests: no database, every case that matters.

Named students carry the cases the tests check by hand: ``ada`` (full marks), ``bob`` (late, penalised),
``cy`` (an override), ``dee`` (not submitted), ``eve`` (a hostile name), ``fay`` (ungradable). The rest are
generated deterministically so that the plots have a distribution to show.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from autograder.reports.cohort_view import AssignmentInfo, CohortView, ExerciseScore, Student, StudentGrade, TestScore

TZ = ZoneInfo("Europe/London")
DUE = datetime(2025, 10, 10, 23, 59, tzinfo=TZ)
HOSTILE_NAME = '<script>alert("x")</script> Eve & "Mallory"'

EXERCISES = (("softmax", 4.0), ("attention", 3.0), ("mlp", 3.0))


def shape_failure(got: int) -> str:
    return f"attention output: wrong shape. Expected (2, 5, 8), got (2, 5, {got})."


def value_failure(err: float, index: int) -> str:
    return ("softmax output: values differ from the expected ones (atol=0.0001, rtol=0.0001).\n"
            f"  mismatched elements: {min(err, 1):.0%} of 15\n"
            f"  max abs error: {err:.4g}, max rel error: {err * 3:.4g}\n"
            f"  worst element at index [0, {index}]: got {err + 0.1:.6g}, expected 0.1")


def exercise(name: str, points: float, failures: list[str], cases: int = 2) -> ExerciseScore:
    per_case = points / cases
    tests = [TestScore(f"test_{name}_{i}", 0.0 if i < len(failures) else per_case, per_case,
                       passed=i >= len(failures), reason="wrong" if i < len(failures) else "passed",
                       output=failures[i] if i < len(failures) else "")
             for i in range(cases)]
    return ExerciseScore(name, sum(t.score for t in tests), points, tuple(tests))


def graded(student: str, exercises: list[ExerciseScore], *, submitted_at: datetime, late_penalty: float = 0.0,
           override: float | None = None, override_note: str = "", error: str | None = None) -> StudentGrade:
    auto = sum(e.score for e in exercises)
    final = override if override is not None else max(0.0, auto - late_penalty)
    return StudentGrade(
        student_id=student, assignment="1.1", submission=student, auto_score=auto, max_score=10.0,
        final_score=final, late_penalty=late_penalty, override=override, override_note=override_note,
        submitted_at=submitted_at, graded_at=submitted_at + timedelta(minutes=3), late=submitted_at > DUE,
        error=error, exercises=tuple(exercises), output="", execution_time=4.2,
    )


def full_marks() -> list[ExerciseScore]:
    return [exercise(n, p, []) for n, p in EXERCISES]


def sample_view(extra_students: int = 14) -> CohortView:
    students = [
        Student("ada", "Ada Lovelace", "ada@example.edu", sis_user_id="S001"),
        Student("bob", "Bob Byte", "bob@example.edu"),
        Student("cy", "Cy Cipher", "cy@example.edu", canvas_id="4242", section="B"),
        Student("dee", "Dee Nosub", "dee@example.edu"),
        Student("eve", HOSTILE_NAME, "eve@example.edu"),
        Student("fay", "Fay Broken", "fay@example.edu"),
    ]
    early = DUE - timedelta(days=1)
    grades = [
        graded("ada", full_marks(), submitted_at=early),
        graded("bob", [exercise("softmax", 4, [value_failure(0.5, 2)]), *full_marks()[1:]],
               submitted_at=DUE + timedelta(days=2, hours=1), late_penalty=1.5),
        graded("cy", [exercise("softmax", 4, [value_failure(0.25, 1), value_failure(0.75, 0)]),
                      exercise("attention", 3, [shape_failure(7)]), exercise("mlp", 3, [])],
               submitted_at=early, override=9.0, override_note="by prof: regraded by hand, see email"),
        graded("eve", [exercise("softmax", 4, ["<img src=x onerror=alert(1)> your code raised ValueError"]),
                       exercise("attention", 3, [shape_failure(4)]), exercise("mlp", 3, [])],
               submitted_at=DUE + timedelta(hours=3), late_penalty=0.5),
        graded("fay", [], submitted_at=early, error="the notebook is not valid JSON (line 3, column 7)"),
    ]
    rng = random.Random(6)
    for i in range(extra_students):
        sid = f"s{i:02d}"
        students.append(Student(sid, f"Student {i:02d}", f"{sid}@example.edu"))
        if i % 7 == 6:
            continue  # not submitted
        exercises = [
            exercise("softmax", 4, [value_failure(rng.uniform(0.01, 2), rng.randrange(5))] * rng.choice([0, 0, 1])),
            exercise("attention", 3, [shape_failure(rng.choice([4, 7, 16]))] * rng.choice([0, 1, 2])),
            exercise("mlp", 3, ["your code raised RuntimeError: mat1 and mat2 shapes cannot be multiplied "
                                f"(10x{rng.choice([8, 16])} and 32x8)"] * rng.choice([0, 0, 0, 2])),
        ]
        when = DUE + timedelta(hours=rng.choice([-30, -5, -1, 7]))
        grades.append(graded(sid, exercises, submitted_at=when, late_penalty=1.0 if when > DUE else 0.0))
    return CohortView(
        cohort="fall25", timezone="Europe/London", students=tuple(students),
        assignments=(AssignmentInfo("1.1", "1.1 Transformers from scratch", 10.0, due=DUE, canvas_id="777"),),
        grades=tuple(grades), unmatched=("zed_final_v2",),
    )
