"""The command-line edges of grade exports and the instructor report.

    autograder export grades --cohort NAME [ASSIGNMENT] --format canvas|csv|gradescope --out PATH [--missing-as-zero]
    autograder report --cohort NAME [ASSIGNMENT] --out FILE.html

Both read the cohort (roster, dates, late policy) and the gradebook into a
:class:`~autograder.reports.cohort_view.CohortView`, then call the pure functions of
``grade_exports`` and ``instructor_report`` and write what they return.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autograder.grade.results import write_text_atomic
from autograder.authoring.assignment import discover_assignments
from autograder.reports.cohort_view import CohortView, view_of_cohort
from autograder.layout import CourseLayout

console = Console(stderr=True)

FORMATS = ("canvas", "csv", "gradescope")


def add_export_grades_options(p_export: argparse.ArgumentParser) -> None:
    """The options ``autograder export grades`` adds to the ``export`` subcommand."""
    group = p_export.add_argument_group("export grades", "a cohort's final grades, for an LMS or a spreadsheet")
    group.add_argument("--cohort", help="cohort name: instructors/cohorts/<name>.toml")
    group.add_argument("--format", choices=FORMATS, default="canvas", dest="grades_format",
                       help="canvas: Canvas gradebook import CSV; csv: one row per student and assignment; "
                            "gradescope: a results.json per submission, under the --out folder")
    group.add_argument("--out", type=Path, dest="grades_out", metavar="PATH",
                       help="file to write (a folder for gradescope)")
    group.add_argument("--missing-as-zero", action="store_true",
                       help="give students who have not submitted 0 instead of an empty cell")
    group.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report",
                       help="write the instructor's HTML report on a cohort (scores, failures, late, missing)")
    p.add_argument("--cohort", required=True, help="cohort name: instructors/cohorts/<name>.toml")
    p.add_argument("assignment", nargs="?", help="one assignment (id or unique prefix); default: all of the cohort's")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")
    p.set_defaults(func=cmd_report)


def _load_view(layout: CourseLayout, cohort_name: str, db: str | None) -> CohortView:
    from autograder.cohort.commands import load_course_cohort
    from autograder.gradebook import open_gradebook

    cohort = load_course_cohort(layout, cohort_name)
    engine = open_gradebook(db or layout.default_gradebook)
    return view_of_cohort(engine, cohort, discover_assignments(layout.source))


def _assignment_id(layout: CourseLayout, cohort_name: str, name: str | None) -> str | None:
    """The cohort's assignment called ``name`` (an id or unique prefix), as its full id."""
    if name is None:
        return None
    from autograder.cohort.commands import load_course_cohort

    return load_course_cohort(layout, cohort_name).assignment(name).id


def cmd_export_grades(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.grade.results import write_json_atomic
    from autograder.reports.exports import canvas_csv, gradescope_results, plain_csv

    if not args.cohort or not args.grades_out:
        console.print("[red]error:[/red] `export grades` needs --cohort NAME and --out PATH, e.g.\n"
                      "  autograder export grades --cohort fall25 --format canvas --out grades.csv")
        return 2
    view = _load_view(layout, args.cohort, args.db)
    assignment = _assignment_id(layout, args.cohort, args.assignment)
    out: Path = args.grades_out
    if args.grades_format == "gradescope":
        files = gradescope_results(view, assignment)
        for relative, data in files.items():
            write_json_atomic(out / relative, data)
        console.print(f"wrote {len(files)} results.json file(s) under {out}")
    else:
        export = canvas_csv if args.grades_format == "canvas" else plain_csv
        write_text_atomic(out, export(view, assignment, missing_as_zero=args.missing_as_zero))
        graded = sum(1 for g in view.grades if assignment in (None, g.assignment))
        console.print(f"wrote {out}: {len(view.students)} student(s), {graded} grade(s)"
                      + ("" if args.missing_as_zero else "; students who have not submitted are left empty"))
        if args.grades_format == "canvas":
            console.print("Canvas: Grades → Import → choose this file; check the preview, then Upload.")
    _warn_unmatched(view)
    return 0


def cmd_report(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.reports.instructor import instructor_report_html

    view = _load_view(layout, args.cohort, args.db)
    assignment = _assignment_id(layout, args.cohort, args.assignment)
    write_text_atomic(args.out, instructor_report_html(view, assignment))
    console.print(f"wrote the report on {view.cohort}{' ' + assignment if assignment else ''} to {args.out}")
    _warn_unmatched(view)
    return 0


def _warn_unmatched(view: CohortView) -> None:
    if view.unmatched:
        console.print(f"[yellow]{len(view.unmatched)} graded submission(s) match no one on the roster and are "
                      f"left out:[/yellow] {', '.join(view.unmatched)}")
