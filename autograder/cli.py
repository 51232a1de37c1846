"""``autograder``: build releases and grade submissions.

    autograder build [ASSIGNMENT...] [--check]
    autograder grade ASSIGNMENT SUBMISSION... --out DIR [--profile lite|full] [--jobs N] [--executor local|ray]
    autograder export nbgrader|otter ASSIGNMENT DIR
    autograder export grades --cohort NAME [ASSIGNMENT] --format canvas|csv|gradescope --out PATH
    autograder report --cohort NAME [ASSIGNMENT] --out FILE.html
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

# Imports stay light: ``autograder grade --jobs N`` hands work to N worker processes, and
# everything this process imports first (torch, nbgrader) only delays their start.
from rich.markup import escape
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autograder import __version__
from autograder.authoring.assignment import AssignmentError, find_assignment
from autograder.authoring.notebook import NotebookError
from autograder.build import build_course, ensure_bundle
from autograder.build.leaks import LeakError
from autograder.grade.bundle import BundleError, load_bundle
from autograder.grade.docker_settings import DockerSettings
from autograder.grade.executors import GraderSpec, WorkerFailed, make_executor
from autograder.grade.gpu_slots import GpuPlanError, gpu_memory_mb, parse_gpus, plan_gpu_slots
from autograder.grade.limits import with_overrides
from autograder.grade.sandbox import SandboxUnavailable
from autograder.grade.submission import find_submissions, submission_name
from autograder.grade.results import remove_stale_temporaries, write_json_atomic, write_text_atomic
from autograder.reports.feedback import feedback_html, student_results
from autograder.cohort.collect import counted_submissions, missing_students
from autograder.cohort.commands import load_course_cohort
from autograder.cohort.config import CohortError
from autograder.cohort.grading import add_override_parser, cmd_regrade, per_student
from autograder.gradebook import graded_versions, grades_for, open_gradebook, record
from autograder.grade.regrade import merged, recorded_result
from autograder.layout import CourseLayout
from autograder.reports.summary import print_summary

console = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autograder", description="Build and grade course assignments.")
    parser.add_argument("--version", action="version", version=f"autograder {__version__}")
    parser.add_argument("--root", type=Path, help="course root (default: found from the current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_build = sub.add_parser("build", help="compile source/ into release/ and grading bundles")
    p_build.add_argument("assignments", nargs="*", help="assignment ids or unique prefixes (default: all)")
    p_build.add_argument("--check", action="store_true", help="write nothing; exit 1 if release/ is stale")
    p_build.set_defaults(func=cmd_build)

    p_samples = sub.add_parser("samples", help="write sample submissions (reference, partial, blank)")
    p_samples.add_argument("assignment")
    p_samples.add_argument("--out", type=Path, required=True)
    p_samples.set_defaults(func=cmd_samples)

    p_grade = sub.add_parser("grade", help="grade submissions against hidden tests")
    p_grade.add_argument("assignment", help="assignment id, or a unique prefix such as 1.1")
    p_grade.add_argument("submissions", nargs="*", type=Path,
                         help=".ipynb / .py files or directories of them (none with --cohort)")
    p_grade.add_argument("--cohort", help="grade the submission that counts of each student of this cohort "
                                          "(collected with `autograder collect`), with the cohort's seed and late policy")
    p_grade.add_argument("--out", type=Path,
                         help="results directory, one folder per submission (with --cohort: results/COHORT/ASSIGNMENT)")
    p_grade.add_argument("--profile", choices=["lite", "full"], default="lite")
    p_grade.add_argument("--device", default="cpu")
    p_grade.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")
    p_grade.add_argument("--only", action="append", help="grade only this exercise (repeatable)")
    p_grade.add_argument(
        "--regrade", action="store_true",
        help="grade again submissions whose content and bundle are unchanged since their recorded grade",
    )
    p_grade.add_argument("--test-timeout", type=float, help="seconds per test case (overrides assignment.toml)")
    p_grade.add_argument("--memory-mb", type=int, help="address-space limit of the student process, MB")
    p_grade.add_argument("--cpu-seconds", type=int, help="CPU-time limit of the student process")
    p_grade.add_argument("--max-processes", type=int, help="processes the student program may have at once")
    p_grade.add_argument("--file-size-mb", type=int, help="largest file (and printed output) the student may write, MB")
    p_grade.add_argument("--open-files", type=int, help="open files the student process may hold")
    p_grade.add_argument("--submission-timeout", type=float, help="wall-clock seconds per submission")
    p_grade.add_argument(
        "--no-sandbox", action="store_true",
        help="run student code without bubblewrap (only on a machine you trust; recorded in every result)",
    )
    p_grade.add_argument("--backend", choices=["bwrap", "docker"], default="bwrap",
                         help="where student code runs: bubblewrap (default) or a Docker container per submission")
    p_grade.add_argument("--docker-image", default="autograder-grader:latest", help="grading image (--backend docker)")
    p_grade.add_argument("--docker-mount-host-python", action="store_true",
                         help="(development) mount this machine's Python and autograder read-only into the container")
    p_grade.add_argument("--docker-assets", type=Path, metavar="DIR",
                         help="mount this asset cache read-only over the image's /opt/assets (--backend docker; "
                              "e.g. the full profile's models from `autograder assets fetch --profile full`)")
    p_grade.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded in parallel (worker processes)")
    p_grade.add_argument("--executor", choices=["local", "ray"], default="local",
                         help="local worker processes, or Ray tasks (pip install 'autograder[cluster]')")
    p_grade.add_argument("--address", help="Ray cluster address (ray://head:10001 or auto); default: a local Ray")
    p_grade.add_argument("--gpu-memory-mb", type=float, default=16384,
                         help="memory of one GPU where nvidia-smi cannot tell (sizes GPU slots and Ray's num_gpus)")
    p_grade.add_argument("--gpus", help="grade on these GPUs, e.g. 0,1 (implies --device cuda); see --workers-per-gpu")
    p_grade.add_argument("--workers-per-gpu", type=int,
                         help="grading workers sharing each GPU, each capped at its share of the GPU's memory "
                              "(default: as many as memory_estimate_mb in assignment.toml lets fit)")
    p_grade.set_defaults(func=cmd_grade)

    p_regrade = sub.add_parser(
        "regrade", help="after fixing a hidden test or tolerance: regrade only what it changed, show the diff, then record",
    )
    p_regrade.add_argument("assignment", help="assignment id, or a unique prefix such as 1.1")
    p_regrade.add_argument("--cohort", required=True, help="the cohort whose recorded grades to bring up to date")
    p_regrade.add_argument("--only", action="append",
                           help="regrade this exercise for everyone, changed or not (repeatable)")
    p_regrade.add_argument("--db", help="gradebook path or SQLAlchemy URL (default: gradebook.sqlite in the course root)")
    p_regrade.add_argument("--out", type=Path, help="results directory (default: results/COHORT/ASSIGNMENT)")
    p_regrade.add_argument("--profile", choices=["lite", "full"], default="lite")
    p_regrade.add_argument("--device", default="cpu")
    p_regrade.add_argument("--jobs", "-j", type=int, default=1)
    p_regrade.add_argument("--yes", action="store_true", help="record the changes without asking")
    p_regrade.add_argument("--dry-run", action="store_true", help="show what would change; record nothing")
    p_regrade.set_defaults(func=cmd_regrade)
    add_override_parser(sub)  # autograder override ASSIGNMENT STUDENT SCORE --cohort NAME --reason ...

    p_export = sub.add_parser("export", help="write an assignment for another grader (nbgrader, otter-grader), "
                                             "or a cohort's grades (Canvas CSV, CSV, Gradescope)")
    p_export.add_argument("tool", choices=["nbgrader", "otter", "grades"])
    p_export.add_argument("assignment", nargs="?",
                          help="assignment id, or a unique prefix such as 1.1 (grades: optional, default all)")
    p_export.add_argument("out", type=Path, nargs="?",
                          help="directory to write (an nbgrader course, or otter assign's input); grades: use --out")
    from autograder.reports.commands import add_export_grades_options, add_report_parser

    add_export_grades_options(p_export)  # autograder export grades --cohort NAME --format canvas|csv|gradescope
    p_export.set_defaults(func=cmd_export)
    add_report_parser(sub)  # autograder report --cohort NAME [ASSIGNMENT] --out FILE.html

    from autograder.cohort.commands import add_collect_parser, add_release_parser

    add_release_parser(sub)  # autograder release --cohort NAME [ASSIGNMENT...]
    add_collect_parser(sub)  # autograder collect --cohort NAME ASSIGNMENT PATH

    from autograder.assets.commands import register as add_assets_parser

    add_assets_parser(sub)  # autograder assets fetch|lock|verify

    args, extra = parser.parse_known_args(argv)
    extra = place_late_positionals(args, extra, sub.choices[args.command])
    if extra:
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        layout = CourseLayout(args.root.resolve()) if args.root else CourseLayout.find()
        return args.func(args, layout)
    except (AssignmentError, NotebookError, LeakError, BundleError, SandboxUnavailable, FileNotFoundError,
            CohortError, GpuPlanError, WorkerFailed) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2


def place_late_positionals(args: argparse.Namespace, extra: list[str], command: argparse.ArgumentParser) -> list[str]:
    """Put positional arguments written after options where they belong; what fits nowhere is returned.

    argparse fills an optional positional (``nargs="?"`` or ``"*"``) with nothing as soon as an option follows
    the positionals before it, so ``export grades --cohort fall25 1.1`` and ``grade 1.1 --out R a.ipynb`` would
    fail with "unrecognized arguments". Here such words fill those positionals, in order, as if written first.
    """
    words = [w for w in extra if not w.startswith("-")]
    if len(words) != len(extra):
        return extra  # an unknown option: argparse's own error says which
    for action in command._actions:
        if action.option_strings or action.nargs not in ("?", "*") or not words:
            continue
        if getattr(args, action.dest) not in (None, []):
            continue
        taken, words = (words, []) if action.nargs == "*" else (words[:1], words[1:])
        values = [action.type(w) if action.type else w for w in taken]
        for value in values:
            if action.choices is not None and value not in action.choices:
                command.error(f"argument {action.dest}: invalid choice: {value!r}")
        setattr(args, action.dest, values if action.nargs == "*" else values[0])
    return words


def cmd_build(args: argparse.Namespace, layout: CourseLayout) -> int:
    report = build_course(layout, check=args.check, only=args.assignments)
    if args.check:
        if report.stale:
            console.print("[red]release/ is out of date with source/:[/red]")
            for line in report.stale:
                console.print(f"  {line}")
            console.print("Run `autograder build` and commit release/.")
            return 1
        console.print(f"release/ is up to date ({len(report.built)} assignment(s)).")
        return 0
    console.print(f"built {', '.join(report.built) or 'nothing'}")
    return 0


def cmd_samples(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.build.samples import sample_submissions  # nbgrader's preprocessors: half a second to import

    assignment = find_assignment(layout.source, args.assignment)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in sample_submissions(assignment).items():
        (args.out / name).write_bytes(data)
    console.print(f"wrote reference, partial and blank submissions of {assignment.id} to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace, layout: CourseLayout) -> int:
    from autograder.export.nbgrader import export_nbgrader
    from autograder.export.otter import export_otter

    if args.tool == "grades":
        from autograder.reports.commands import cmd_export_grades

        return cmd_export_grades(args, layout)
    if args.assignment is None or args.out is None:
        console.print(f"[red]error:[/red] export {args.tool} needs ASSIGNMENT and DIR, "
                      f"e.g. autograder export {args.tool} 1.1 out/")
        return 2
    assignment = find_assignment(layout.source, args.assignment)
    ensure_bundle(layout, assignment)
    bundle = load_bundle(layout.bundles / assignment.id)
    if args.tool == "nbgrader":
        path = export_nbgrader(assignment, bundle, args.out)
        console.print(
            f"wrote the nbgrader course {args.out} ({path.relative_to(args.out)}); next, in {args.out}:\n"
            f"  nbgrader generate_assignment {assignment.id}   then   nbgrader autograde {assignment.id}"
        )
    else:
        path = export_otter(assignment, bundle, args.out)
        console.print(
            f"wrote the otter master notebook {path}; next:\n"
            f"  otter assign {path} DIST   then   otter run -a DIST/autograder/*.zip SUBMISSION.ipynb"
        )
    console.print("Graded there, student code runs without our sandbox, and needs `autograder` installed.")
    return 0


@contextmanager
def interrupts_deferred():
    """Ctrl-C during the block takes effect when it ends: what the block writes is written whole."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to defer here
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if pending:
        raise KeyboardInterrupt


def same_names(paths: list[Path]) -> dict[str, list[Path]]:
    """Submission names that more than one file would get (a name keys its results folder and grade)."""
    by_name: dict[str, list[Path]] = {}
    for path in paths:
        by_name.setdefault(submission_name(path), []).append(path)
    return {name: clashing for name, clashing in by_name.items() if len(clashing) > 1}


def graded_whole(row, sha256: str) -> bool:
    """Whether a recorded grade is a full grade of the file with this content (one --only can complete)."""
    return row is not None and row.submission_sha256 == sha256 and row.error is None


def cmd_grade(args: argparse.Namespace, layout: CourseLayout) -> int:
    # Grading never downloads: the references load from the asset cache, and a missing
    # asset must fail with its fetch command, not turn into a hub request.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # The workers load models while the command shows its own progress: no library's bars over it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    assignment = find_assignment(layout.source, args.assignment)
    ensure_bundle(layout, assignment)
    bundle = load_bundle(layout.bundles / assignment.id)
    gpu_slots = None
    if args.gpus:  # an impossible packing is refused first: it is the command's mistake, whatever the inputs
        gpu_slots = gpu_plan(args, float(bundle.manifest.get("memory_estimate_mb", 2000)))
        args.device = "cuda" if args.device == "cpu" else args.device
        args.jobs = len(gpu_slots)
    engine = open_gradebook(args.db or layout.default_gradebook)
    cohort, counted = None, {}
    if args.cohort:
        if args.submissions:
            console.print("[red]error:[/red] with --cohort, the submissions are the collected ones: give no paths")
            return 2
        cohort = load_course_cohort(layout, args.cohort)
        counted = cohort_submissions(engine, cohort, assignment.id)
        paths = [cs[0].path for cs in counted.values()]
        args.out = args.out or layout.root / "results" / cohort.name / assignment.id
    else:
        if args.out is None:
            console.print("[red]error:[/red] give --out DIR for the results (or --cohort NAME)")
            return 2
        paths = find_submissions(args.submissions)
        # `grade 1.1 submissions/` would also take every cohort's collected copies as submissions
        cohort_of = {path: layout.collected_cohort(path) for path in paths}
        paths = [path for path in paths if cohort_of[path] is None]
        collected = Counter(c for c in cohort_of.values() if c is not None)
        for name, count in sorted(collected.items()):
            console.print(f"[yellow]skipped {count} file(s) collected for cohort {name}:[/yellow] grade them "
                          f"with --cohort {name}, which counts each student's submission under the late policy")
        clashes = same_names(paths)
        if clashes:
            name, clashing = next(iter(clashes.items()))
            console.print(
                f"[red]error:[/red] {len(clashes)} submission name(s) would be given to more than one file, and one "
                f"grade would overwrite the other: {escape(repr(name))} is {escape(', '.join(str(p) for p in clashing))}. Name each file "
                "after its student (alice.ipynb), or collect them into a cohort (`autograder collect`), which finds "
                "the student in the file's path"
            )
            return 2
    if not paths:
        console.print("[yellow]no submissions found[/yellow]")
        return 1
    exercises = [ex["name"] for ex in bundle.manifest["exercises"]]
    unknown = sorted(set(args.only or []) - set(exercises))
    if unknown:
        console.print(f"[red]error:[/red] {assignment.id} has no exercise {unknown[0]!r} (it has: {', '.join(exercises)})")
        return 2
    # assignment.toml's [limits] are the defaults; each flag overrides one for this run.
    limits = with_overrides(
        bundle.limits, test_timeout_s=args.test_timeout, memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds,
        max_processes=args.max_processes, file_size_mb=args.file_size_mb, open_files=args.open_files,
    )
    spec = GraderSpec(
        layout.bundles / assignment.id, profile=args.profile, device=args.device, limits=limits,
        only=tuple(args.only) if args.only else None, sandbox="none" if args.no_sandbox else args.backend,
        submission_timeout_s=args.submission_timeout,
        docker=DockerSettings(image=args.docker_image, mount_host_python=args.docker_mount_host_python,
                              assets=args.docker_assets),
        cohort_seed=cohort.seed if cohort else None,
    )
    remove_stale_temporaries(args.out)  # a killed run may have died mid-write; its work is redone below
    # Resume: a grade is kept while the submission's bytes and the bundle are
    # unchanged (and its results.json is still there).
    cohort_name = cohort.name if cohort else ""
    recorded = {} if (args.regrade or args.only) else graded_versions(engine, bundle.assignment, cohort=cohort_name)
    # --only grades some exercises again: each result is merged into the submission's recorded full grade.
    whole = {row.submission: row for row in grades_for(engine, bundle.assignment, cohort=cohort_name)} if args.only else {}
    todo, skipped, never_graded = [], 0, []
    for path in paths:
        names = [c.student for c in counted[submission_name(path)]] if cohort else [submission_name(path)]
        current = (hashlib.sha256(path.read_bytes()).hexdigest(), bundle.bundle_hash)
        if all(recorded.get(n) == current and (args.out / n / "results.json").exists() for n in names):
            skipped += 1
        else:
            todo.append(path)
        never_graded += [n for n in names if args.only and not graded_whole(whole.get(n), current[0])]
    if never_graded:
        console.print(
            f"[red]error:[/red] --only grades some exercises of submissions already graded in full, and "
            f"{len(never_graded)} have no full grade of their current content: {escape(', '.join(never_graded[:10]))}. "
            "Grade them without --only first"
        )
        return 2

    def complete(one):
        return merged(recorded_result(whole[one.submission]), one, exercises) if args.only else one
    if skipped:
        console.print(f"{skipped} submission(s) already graded with this bundle: skipped (--regrade grades them again)")
    results: list = []
    penalties: dict[str, float] = {}  # a cohort's: submission (student) -> late penalty in points
    if not todo:
        print_summary(results, Console(), penalties if cohort else None)
        return 0
    where = f"{args.jobs} worker(s)" + (" on Ray" if args.executor == "ray" else "")
    try:
        with console.status(f"loading {assignment.id} (reference solution, hidden tests) in {where}…"):
            executor = make_executor(spec, args.executor, args.jobs, args.address, args.gpu_memory_mb, gpu_slots)
    except KeyboardInterrupt:  # what started dies with this process (bwrap sandboxes die with their parent)
        console.print("[yellow]interrupted[/yellow] while loading the grader: nothing was graded")
        return 130
    progress = Progress(
        TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )
    try:
        with progress:
            task = progress.add_task("grade", total=len(todo), name="")
            for result in executor.grade(todo):
                # Written and recorded one by one, so an interruption loses at most the submissions in flight.
                for one, where in per_student(result, counted.get(result.submission) if cohort else None, complete):
                    with interrupts_deferred():  # each result saved whole, and counted as saved
                        shown = bundle.feedback_options()
                        write_json_atomic(args.out / one.submission / "results.json",
                                          student_results(one, shown["visible_expected"]))
                        page = feedback_html(one, public_output=one.public_output, **shown)
                        write_text_atomic(args.out / one.submission / "feedback.html", page)
                        record(engine, one, cohort=cohort_name, **where)
                        results.append(one)
                        penalties[one.submission] = where.get("late_penalty", 0.0)
                progress.update(task, advance=1, name=result.submission)
    except KeyboardInterrupt:
        # The clean-up below is bounded (executors.CANCEL_GRACE_S): a second Ctrl-C must not cut it short
        # and leave sandboxed programs running. Ignored from here on: the command ends once it is done.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # What was in flight is abandoned (its programs stopped), not waited for: Ctrl-C means now.
        executor.cancel()
        again = "run it again without --regrade" if args.regrade else "run the same command again"
        console.print(
            f"[yellow]interrupted:[/yellow] {len(results)} of {len(todo)} graded and saved; the submissions in "
            f"flight were abandoned; {again} to grade the rest"
        )
        print_summary(results, Console(), penalties if cohort else None)
        return 130
    finally:
        executor.close()
    print_summary(results, Console(), penalties if cohort else None)
    console.print(f"results written to {args.out}")
    return 0


def cohort_submissions(engine, cohort, assignment_id: str) -> dict[str, list]:
    """The file that counts for each student (by file name: two students may hand in identical bytes)."""
    cohort.assignment(assignment_id)  # refuses an assignment the cohort does not have, naming its file
    counted: dict[str, list] = {}
    for c in counted_submissions(engine, cohort, assignment_id):
        counted.setdefault(submission_name(c.path), []).append(c)
    missing = missing_students(engine, cohort, assignment_id)
    if missing:
        console.print(f"[yellow]{len(missing)} student(s) of {cohort.name} have no submission:[/yellow] "
                      + ", ".join(s.id for s in missing))
    return counted


def gpu_plan(args: argparse.Namespace, memory_estimate_mb: float) -> list:
    """``--gpus``/``--workers-per-gpu`` as one slot per worker, refused before anything starts if it cannot fit."""
    if args.executor == "ray":
        raise GpuPlanError("--gpus packs local workers; on Ray, GPUs are Ray's to schedule (drop --gpus)")
    gpus = parse_gpus(args.gpus)
    slots = plan_gpu_slots(gpus, memory_estimate_mb, gpu_memory_mb(gpus[0], args.gpu_memory_mb), args.workers_per_gpu)
    console.print(f"{len(slots)} grading worker(s): {len(slots) // len(gpus)} per GPU on GPU(s) "
                  f"{', '.join(map(str, gpus))}, each process capped at {slots[0].process_memory_fraction:.0%} "
                  "of its GPU's memory")
    return slots


if __name__ == "__main__":
    sys.exit(main())
