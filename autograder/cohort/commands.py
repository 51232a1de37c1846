"""``autograder release`` and ``autograder collect``: the command-line edges of cohorts.

    autograder release --cohort NAME [ASSIGNMENT...]
    autograder collect --cohort NAME ASSIGNMENT PATH [--format auto|folder|canvas|gradescope] [--db URL]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from autograder.authoring.assignment import discover_assignments
from autograder.cohort.config import Cohort, CohortError, load_cohort
from autograder.layout import CourseLayout

console = Console(stderr=True)


def load_course_cohort(layout: CourseLayout, name: str) -> Cohort:
    """The cohort called ``name``, its assignment ids resolved against this course's."""
    return load_cohort(layout.root, name, known_assignments=[a.id for a in discover_assignments(layout.source)])


# ---------------------------------------------------------------------- release


def add_release_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release", help="write a cohort's student materials and a zip per assignment (checked first)",
        description="For each assignment: refuse if release/ is stale or the reference solution loses points "
                    "with the cohort's seed; else write build/cohorts/<cohort>/<id>/ and <id>.zip.",
    )
    p.add_argument("--cohort", required=True, help="cohort name: instructors/cohorts/<name>.toml")
    p.add_argument("assignments", nargs="*", help="assignment ids or unique prefixes (default: all of the cohort's)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade the reference without bubblewrap (it is your own code; use where bwrap cannot run)")
    p.set_defaults(func=cmd_release)


def cmd_release(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.cohort.release import ReleaseRefused, release_assignment

    try:
        cohort = load_course_cohort(layout, args.cohort)
        slots = [cohort.assignment(name) for name in args.assignments] if args.assignments else list(cohort.assignments)
    except CohortError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    released, refused = [], []
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(f"releasing to {cohort.name}", total=len(slots))
        for slot in slots:
            try:
                released.append(release_assignment(
                    layout, cohort, slot.id, sandbox="none" if args.no_sandbox else "bwrap",
                    on_step=lambda step: progress.update(task, description=step),
                ))
            except ReleaseRefused as exc:
                refused.append(slot.id)
                progress.console.print(f"[red]refused:[/red] {escape(str(exc))}")
            progress.advance(task)
    for item in released:
        console.print(f"released {item.assignment} to {cohort.name}: {item.folder} ({item.files} files) and {item.zip_path}")
    if refused:
        console.print(f"[red]{len(refused)} assignment(s) not released:[/red] {', '.join(refused)}")
        return 1
    return 0


# ---------------------------------------------------------------------- collect


def add_collect_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect", help="take in a cohort's submissions: a folder, a Canvas zip or a Gradescope export zip",
        description="Map each file to a roster student, copy it under submissions/<cohort>/<assignment>/<student>/ "
                    "and record it in the gradebook. Exits 1 if any file could not be mapped (after storing the rest).",
    )
    p.add_argument("--cohort", required=True, help="cohort name: instructors/cohorts/<name>.toml")
    p.add_argument("assignment", help="assignment id, or a unique prefix such as 1.1")
    p.add_argument("path", type=Path, help="a folder of .ipynb/.py files, or a zip from Canvas or Gradescope")
    p.add_argument("--format", dest="fmt", choices=["auto", "folder", "canvas", "gradescope"], default="auto",
                   help="what PATH is (default: guessed from its contents)")
    p.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")
    p.set_defaults(func=cmd_collect)


def cmd_collect(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.cohort.collect import CollectError, collect, counted_submissions
    from autograder.gradebook import intake_for, open_gradebook

    try:
        cohort = load_course_cohort(layout, args.cohort)
        slot = cohort.assignment(args.assignment)
        engine = open_gradebook(args.db or layout.default_gradebook)
        report = collect(engine, layout.root, cohort, slot.id, args.path, args.fmt)
    except (CohortError, CollectError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2

    out = Console()
    received: dict[str, int] = {}
    for item in intake_for(engine, cohort.name, slot.id):
        received[item.student] = received.get(item.student, 0) + 1
    counted = {c.student: c for c in counted_submissions(engine, cohort, slot.id)}
    table = Table(title=f"{slot.id} — cohort {cohort.name} (due {slot.due:%Y-%m-%d %H:%M %Z})")
    for column in ("student", "name", "files", "counts", "submitted", "late"):
        # fold, never elide: an instructor needs whole file names to act on them
        table.add_column(column, justify="right" if column == "files" else "left", overflow="fold")
    for student in cohort.roster:
        c = counted.get(student.id)
        if c is None:
            table.add_row(student.id, student.name, str(received.get(student.id, 0)), "[yellow]nothing[/yellow]", "", "")
            continue
        late = c.lateness.describe()
        table.add_row(
            student.id, student.name, str(received.get(student.id, 0)), c.original_name or c.path.name,
            f"{c.submitted_at.astimezone(cohort.timezone):%Y-%m-%d %H:%M}",
            late if c.lateness.on_time else f"[red]{late}[/red]",
        )
    out.print(table)
    console.print(
        f"{report.fmt}: {len(report.received)} file(s) read, {len(report.stored)} mapped and stored under "
        f"{layout.root / 'submissions' / cohort.name / slot.id}, {report.newly_recorded} new in the gradebook"
    )
    if report.unmapped:
        problems = Table(title=f"[red]{len(report.unmapped)} file(s) not mapped to a student (not stored)[/red]")
        problems.add_column("file", overflow="fold")
        problems.add_column("why", overflow="fold")
        for r in report.unmapped:
            problems.add_row(r.original_name, r.problem)
        out.print(problems)
        console.print("Fix the roster (or rename the files) and collect again; files already stored are kept once.")
        return 1
    return 0
