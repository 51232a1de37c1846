"""Release an assignment to a cohort: check it, then write the students' folder and zip.

An assignment is released only when

1. ``release/<id>/`` is what ``autograder build`` would write now (nothing stale), and
2. the reference solution, graded by the real grader in the sandbox with the
   *cohort's* seed, scores full marks: a hidden test that fails the reference
   for this cohort's random inputs would fail every student.

Then ``build/cohorts/<cohort>/<id>/`` holds the release files plus a README
for students (dates in the cohort's timezone, the late policy in words), and
``build/cohorts/<cohort>/<id>.zip`` the same, byte-for-byte reproducible
(sorted entries, fixed timestamps and permissions), ready for an LMS or a repo.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from autograder.authoring.assignment import Assignment, find_assignment
from autograder.build import build_course, ensure_bundle
from autograder.build.samples import sample_submissions
from autograder.build.tree import read_tree, write_tree
from autograder.cohort.config import Cohort, CohortAssignment, LatePolicy
from autograder.layout import CourseLayout

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no trace of when it was made
ZIP_FILE_MODE = 0o644 << 16


class ReleaseRefused(RuntimeError):
    """The assignment is not fit to release to this cohort; the message says why and what to do."""


@dataclass(frozen=True)
class ReleasedAssignment:
    assignment: str
    folder: Path
    zip_path: Path
    files: int


def cohort_release_dir(layout: CourseLayout, cohort: str) -> Path:
    return layout.root / "build" / "cohorts" / cohort


# ---------------------------------------------------------------------- pure parts


def describe_late_policy(policy: LatePolicy) -> str:
    """The late policy in words, for students."""
    grace = int(policy.grace_minutes) if float(policy.grace_minutes).is_integer() else policy.grace_minutes
    lines = []
    if grace:
        lines.append(f"Work handed in up to {grace} minutes after the deadline counts as on time.")
    if policy.penalty_per_day > 0:
        after = "After that" if grace else "After the deadline"
        lines.append(
            f"{after}, {policy.penalty_per_day:.0%} of the score you earn is deducted for every started day "
            f"(24 hours) late, up to at most {policy.max_penalty:.0%}."
        )
    else:
        lines.append("Late work is accepted without penalty.")
    if policy.counts == "latest_on_time":
        lines.append(
            "You may hand in as often as you like: your latest on-time submission counts. "
            "Only if none is on time does your latest late one count, with its penalty."
        )
    else:
        lines.append("You may hand in as often as you like: your latest submission counts, late or not.")
    return " ".join(lines)


def _when(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y, %H:%M} ({moment.tzinfo.key}, {moment:%Z})"


def student_readme(title: str, slot: CohortAssignment, cohort: Cohort, notebook: str) -> str:
    """The README students get with an assignment: what it is, when, and the late policy."""
    return (
        f"# {title}\n\n"
        f"- **Opens:** {_when(slot.opens)}\n"
        f"- **Due:** {_when(slot.due)}\n\n"
        f"Work in `{notebook}`: fill in each cell marked `raise NotImplementedError()`, keep the other cells "
        f"as they are, and hand in the notebook.\n\n"
        f"## Late work\n\n{describe_late_policy(cohort.late_policy)}\n"
    )


def deterministic_zip(files: dict[str, bytes], folder: str) -> bytes:
    """``files`` under ``folder/`` in a zip that depends on nothing but their names and bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for rel in sorted(files):
            info = zipfile.ZipInfo(f"{folder}/{rel}", date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ZIP_FILE_MODE
            info.create_system = 3  # unix, whatever machine wrote it, so the mode bits mean the same
            archive.writestr(info, files[rel], compresslevel=9)
    return buffer.getvalue()


# ---------------------------------------------------------------------- checks


def check_build(layout: CourseLayout, assignment: Assignment) -> None:
    """Refuse when ``release/<id>/`` differs from what ``autograder build`` would write."""
    report = build_course(layout, check=True, only=[assignment.id])
    if report.stale:
        listing = "\n  ".join(report.stale)
        raise ReleaseRefused(
            f"{assignment.id}: release/ is out of date with source/:\n  {listing}\n"
            f"Run `autograder build {assignment.id}`, review and commit release/, then release again."
        )


def check_reference(layout: CourseLayout, assignment: Assignment, cohort_seed: int, sandbox: str = "bwrap") -> None:
    """Grade the reference solution with the cohort's seed; refuse unless it scores full marks."""
    from autograder.grade.executors import GraderSpec, make_executor

    ensure_bundle(layout, assignment)
    spec = GraderSpec(layout.bundles / assignment.id, sandbox=sandbox, cohort_seed=cohort_seed)
    with tempfile.TemporaryDirectory(prefix="autograder-release-") as tmp:
        path = Path(tmp) / "reference.ipynb"
        path.write_bytes(sample_submissions(assignment)["reference.ipynb"])
        executor = make_executor(spec)
        try:
            (result,) = list(executor.grade([path]))
        finally:
            executor.close()
    if result.error:
        raise ReleaseRefused(
            f"{assignment.id}: the reference solution could not be graded with this cohort's seed "
            f"({cohort_seed}): {result.error}"
        )
    if result.score < result.max_score:
        lost = []
        for exercise in result.exercises:
            if exercise.score < exercise.max_score:
                failed = next((t for t in exercise.tests if not t.passed), None)
                why = f" — {failed.name}: {_first_line(failed.output)}" if failed else ""
                lost.append(f"{exercise.name}: {exercise.score:g}/{exercise.max_score:g}{why}")
        listing = "\n  ".join(lost)
        raise ReleaseRefused(
            f"{assignment.id}: the reference solution scores {result.score:g}/{result.max_score:g} with this "
            f"cohort's seed ({cohort_seed}); exercises that lost points:\n  {listing}\n"
            f"Fix the hidden tests in source/{assignment.id}/ (they must pass the reference for any seed), then release "
            f"again."
        )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else "(no output)"


# ---------------------------------------------------------------------- writing


def write_cohort_release(layout: CourseLayout, cohort: Cohort, assignment: Assignment) -> ReleasedAssignment:
    """Write the cohort's folder and zip for ``assignment`` (no checks: see :func:`release_assignment`)."""
    slot = cohort.assignment(assignment.id)
    files = read_tree(layout.release / assignment.id)
    if not files:
        raise ReleaseRefused(f"{assignment.id}: release/{assignment.id}/ is empty; run `autograder build` first")
    if "README.md" in files:
        raise ReleaseRefused(
            f"{assignment.id}: release/{assignment.id}/README.md would clash with the students' README that "
            f"release writes; rename it in source/"
        )
    notebook = next((rel for rel in sorted(files) if rel.endswith(".ipynb") and "/" not in rel), "the notebook")
    files["README.md"] = student_readme(assignment.title, slot, cohort, notebook).encode()
    out = cohort_release_dir(layout, cohort.name)
    folder = out / assignment.id
    write_tree(folder, files)
    zip_path = out / f"{assignment.id}.zip"
    data = deterministic_zip(files, assignment.id)
    staging = zip_path.with_name(f".{zip_path.name}.tmp")
    staging.write_bytes(data)
    staging.replace(zip_path)  # atomic: an LMS upload never picks up half a zip
    return ReleasedAssignment(assignment.id, folder, zip_path, len(files))


def release_assignment(
    layout: CourseLayout, cohort: Cohort, assignment_name: str, sandbox: str = "bwrap",
    on_step: Callable[[str], None] = lambda step: None,
) -> ReleasedAssignment:
    """Check one assignment for ``cohort`` (build up to date, reference 100% with the cohort seed), then write it."""
    slot = cohort.assignment(assignment_name)
    assignment = find_assignment(layout.source, slot.id)
    on_step(f"{assignment.id}: checking release/ against source/")
    check_build(layout, assignment)
    on_step(f"{assignment.id}: grading the reference with seed {cohort.seed}")
    check_reference(layout, assignment, cohort.seed, sandbox=sandbox)
    on_step(f"{assignment.id}: writing the students' folder and zip")
    return write_cohort_release(layout, cohort, assignment)
