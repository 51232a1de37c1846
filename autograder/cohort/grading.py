"""Grading a cohort: the grade --cohort record step, and regrading after a fix (``autograder regrade``).

A cohort's grade is recorded per student, with when the file came in and the
late penalty in points. A regrade grades only the exercises whose fingerprint
changed (or those named with ``--only``), merges them into the recorded grade,
shows every score that would change, and records only once the instructor
agrees.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from rich.markup import escape
from rich.console import Console
from rich.table import Table

from autograder.authoring.assignment import find_assignment
from autograder.build import ensure_bundle
from autograder.cohort.commands import load_course_cohort
from autograder.cohort.late import late_penalty
from autograder.reports.feedback import feedback_html, student_results
from autograder.grade.bundle import load_bundle
from autograder.grade.executors import GraderSpec, make_executor
from autograder.grade.regrade import grade_change, merged, recorded_result, stale_exercises
from autograder.grade.results import write_json_atomic, write_text_atomic
from autograder.grade.submission import submission_name
from autograder.gradebook import grades_for, intake_for, open_gradebook, record
from autograder.layout import CourseLayout

console = Console(stderr=True)


def cmd_regrade(args: argparse.Namespace, layout: CourseLayout) -> int:
    assignment = find_assignment(layout.source, args.assignment)
    ensure_bundle(layout, assignment)
    bundle = load_bundle(layout.bundles / assignment.id)
    cohort = load_course_cohort(layout, args.cohort)
    cohort.assignment(assignment.id)
    engine = open_gradebook(args.db or layout.default_gradebook)
    out = args.out or layout.root / "results" / cohort.name / assignment.id
    order = [ex["name"] for ex in bundle.manifest["exercises"]]
    unknown = sorted(set(args.only or []) - set(order))
    if unknown:
        console.print(f"[red]error:[/red] {assignment.id} has no exercise {unknown[0]!r} (it has: {', '.join(order)})")
        return 2
    from autograder.grade.runner import bundle_fingerprints  # torch: only where a regrade needs it

    fingerprints = bundle_fingerprints(bundle, args.profile, args.device, cohort.seed)
    files = {(i.student, i.sha256): Path(i.stored_path) for i in intake_for(engine, cohort.name, assignment.id)}
    # Submissions grouped by the exact exercises they need again: one grading pass per group.
    groups: dict[tuple[str, ...], list] = {}
    unfound = []
    for row in grades_for(engine, assignment.id, cohort=cohort.name):
        before = recorded_result(row)
        stale = tuple(stale_exercises(before, fingerprints, args.only))
        if not stale:
            continue
        path = files.get((row.student, row.submission_sha256))
        if path is None or not path.exists():
            unfound.append(row.submission)
            continue
        groups.setdefault(stale, []).append((row, before, path))
    if unfound:
        console.print(f"[yellow]the graded file of {len(unfound)} submission(s) is no longer in the intake; "
                      f"kept as they are:[/yellow] {', '.join(unfound)}")
    if not groups:
        console.print(f"every recorded grade of {assignment.id} in {cohort.name} is up to date with the bundle")
        return 0
    planned = []  # (row, before, after)
    for stale, members in groups.items():
        console.print(f"regrading {', '.join(stale)} for {len(members)} submission(s)")
        spec = GraderSpec(
            layout.bundles / assignment.id, profile=args.profile, device=args.device, only=stale,
            cohort_seed=cohort.seed,
        )
        by_name: dict[str, list] = {}  # two students may have handed in identical files
        for row, before, path in members:
            by_name.setdefault(submission_name(path), []).append((row, before, path))
        executor = make_executor(spec, "local", args.jobs, None, 16384)
        try:
            for fresh in executor.grade(list({path: None for _, _, path in members})):
                for row, before, _ in by_name[fresh.submission]:
                    planned.append((row, before, merged(before, replace(fresh, submission=row.submission), order)))
        finally:
            executor.close()
    changes = [(row, change) for row, before, after in planned if (change := grade_change(before, after))]
    print_grade_changes(changes, len(planned), Console())
    if args.dry_run:
        console.print("dry run: nothing recorded")
        return 0
    if changes and not args.yes:
        if not sys.stdin.isatty():
            console.print("[yellow]not recorded:[/yellow] run again with --yes to record these changes")
            return 1
        from rich.prompt import Confirm

        if not Confirm.ask(f"record {len(planned)} regraded submission(s)?", console=console):
            console.print("nothing recorded")
            return 1
    due = cohort.assignment(assignment.id).due
    for row, _, after in planned:
        lateness = late_penalty(row.submitted_at, due, cohort.late_policy,
                                cohort.extension_due(row.student, assignment.id)) if row.submitted_at else None
        shown = bundle.feedback_options()
        write_json_atomic(out / after.submission / "results.json", student_results(after, shown["visible_expected"]))
        write_text_atomic(out / after.submission / "feedback.html", feedback_html(after, public_output=after.public_output, **shown))
        record(engine, after, cohort=cohort.name, student=row.student, submitted_at=row.submitted_at,
               late_penalty=round(after.score * lateness.fraction, 6) if lateness else 0.0)
    console.print(f"recorded {len(planned)} regraded submission(s); {len(changes)} changed")
    return 0


def print_grade_changes(changes: list, regraded: int, out: Console) -> None:
    if not changes:
        out.print(f"{regraded} submission(s) regraded; no score changed")
        return
    table = Table(title=f"grades that change ({len(changes)} of {regraded} regraded)")
    for column in ("submission", "exercise", "before", "after", "total before", "total after"):
        table.add_column(column, justify="left" if column in ("submission", "exercise") else "right")
    for row, change in changes:
        for i, (exercise, old, new) in enumerate(change.exercise_changes):
            first = i == 0
            table.add_row(change.submission if first else "", exercise, f"{old:g}", f"{new:g}",
                          f"{change.before:g}" if first else "", f"{change.after:g}" if first else "")
    out.print(table)


def per_student(result, counted, complete=lambda one: one) -> list[tuple]:
    """A graded file as the grade of each student who handed it in (one, unless two sent identical bytes).

    Each comes with what the gradebook records beside the score: the student,
    when the file came in, and the late penalty in points. ``complete`` makes a
    grade of some exercises (``grade --only``) whole from the student's recorded
    one, before the penalty is worked out on it.
    """
    if counted is None:
        return [(complete(result), {})]
    graded = []
    for c in counted:
        one = complete(replace(result, submission=c.student))
        graded.append((one, {"student": c.student, "submitted_at": c.submitted_at,
                             "late_penalty": round(one.score * c.lateness.fraction, 6)}))
    return graded


# ---------------------------------------------------------------------- manual overrides


def add_override_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "override", help="set (or clear) a student's grade by hand, with a reason; or show the audit trail",
        description="Every override is kept in the gradebook's audit trail with its author, time and reason; "
                    "the latest in force replaces the auto score less the late penalty.",
    )
    p.add_argument("assignment", help="assignment id, or a unique prefix such as 1.1")
    p.add_argument("student", nargs="?", help="roster id (leave out with --history to see the whole assignment)")
    p.add_argument("score", nargs="?", type=float, help="the grade to give, in points")
    p.add_argument("--cohort", required=True)
    p.add_argument("--reason", help="why (required to set or clear): it goes in the audit trail")
    p.add_argument("--author", default=os.environ.get("USER") or "", help="who (default: $USER)")
    p.add_argument("--clear", action="store_true", help="remove the override in force, back to the auto score")
    p.add_argument("--history", action="store_true", help="show the audit trail instead of changing anything")
    p.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")
    p.set_defaults(func=cmd_override)


def cmd_override(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.gradebook import GradebookError, audit_trail, final_grades, override_grade

    assignment = find_assignment(layout.source, args.assignment)
    cohort = load_course_cohort(layout, args.cohort)
    engine = open_gradebook(args.db or layout.default_gradebook)
    if args.history:
        trail = audit_trail(engine, cohort.name, assignment.id, args.student)
        table = Table(title=f"overrides of {assignment.id} in {cohort.name}")
        for column in ("when (UTC)", "student", "score", "author", "reason"):
            table.add_column(column)
        for o in trail:
            table.add_row(f"{o.created_at:%Y-%m-%d %H:%M}", o.student, "cleared" if o.score is None else f"{o.score:g}",
                          o.author, o.reason)
        Console().print(table if trail else f"no overrides of {assignment.id} in {cohort.name}")
        return 0
    if args.student is None or (args.score is None) == (not args.clear):
        console.print("[red]error:[/red] give STUDENT and SCORE, or STUDENT --clear (or --history)")
        return 2
    if not args.author.strip():
        console.print("[red]error:[/red] an override needs its author, and $USER is not set here: "
                      "give --author NAME (who is changing this grade?)")
        return 2
    try:
        override_grade(engine, cohort.name, assignment.id, args.student, None if args.clear else args.score,
                       args.author, args.reason or "")
    except GradebookError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    grade = next(g for g in final_grades(engine, cohort.name, assignment.id) if g.student == args.student)
    console.print(f"{args.student}: final grade {grade.final_score:g} / {grade.max_score:g} "
                  f"(auto {grade.auto_score:g}, late penalty {grade.late_penalty:g}"
                  + (f", override by {grade.override_author}: {grade.override_reason}" if grade.override is not None else "")
                  + ")")
    return 0
