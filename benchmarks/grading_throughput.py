"""Grade one batch of section 1.1 submissions three ways, on this machine, in one run.

    .venv/bin/python benchmarks/grading_throughput.py [--count 40] [--scaling 10,40,160] [--jobs 2]

1. ``autograder grade`` (bubblewrap sandbox, warm workers, ``--jobs``);
2. ``nbgrader autograde`` on ``autograder export nbgrader``;
3. ``otter run`` on ``autograder export otter`` (one call per notebook, as otter grades).

The submissions are generated from the section's own material: the reference,
a blank and a partial release, then its mutants and alternative solutions
(``variants.toml``) in turn. Scores must agree across the three tools.

Reported: total wall time and the per-submission median of each, the ratios,
our overhead (grading time over the time spent inside the hidden tests), and
how our time grows with the batch size. Results go to
``benchmarks/results/grading_throughput.{json,md}`` (with ``--skip-baselines``:
``grading_throughput_ours.{json,md}``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.authoring.assignment import find_assignment  # noqa: E402
from autograder.build import ensure_bundle  # noqa: E402
from autograder.build.samples import blank_submission, partial_submission, reference_submission  # noqa: E402
from autograder.build.variants import apply_variant, load_variants  # noqa: E402
from autograder.export.nbgrader import export_nbgrader, nbgrader_submission, read_nbgrader_scores  # noqa: E402
from autograder.export.otter import export_otter, otter_submission, read_otter_scores  # noqa: E402
from autograder.grade.bundle import load_bundle  # noqa: E402
from autograder.layout import CourseLayout  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "AUTOGRADER_PROFILE": "lite"}


def make_submissions(assignment, count: int, folder: Path) -> list[Path]:
    """``count`` distinct-named submissions: reference, blank, partial, then mutants and alternatives in turn."""
    fixed = [("reference", reference_submission), ("blank", blank_submission), ("partial", partial_submission)]
    variants = load_variants(assignment)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        if i < len(fixed):
            name, nb = fixed[i][0], fixed[i][1](assignment)
        else:
            variant = variants[(i - len(fixed)) % len(variants)]
            name, nb = f"{variant.kind}_{i:03d}", apply_variant(assignment, variant)
        path = folder / f"s{i:03d}_{name}.ipynb"
        path.write_text(nbformat.writes(nb))
        paths.append(path)
    return paths


def run_ours(assignment, paths: list[Path], work: Path, jobs: int) -> dict:
    subs = work / "subs"
    subs.mkdir(parents=True)
    for p in paths:
        shutil.copyfile(p, subs / p.name)
    out = work / "out"
    command = [sys.executable, "-m", "autograder", "--root", str(REPO), "grade", assignment.id, str(subs),
               "--out", str(out), "--db", str(work / "book.sqlite"), "--jobs", str(jobs)]
    began = time.monotonic()
    subprocess.run(command, env=ENV, check=True, capture_output=True)
    wall = time.monotonic() - began
    scores, per_submission, bodies, fixtures = {}, [], 0.0, 0.0
    for p in paths:
        results = json.loads((out / p.stem / "results.json").read_text())
        scores[p.stem] = results["score"]
        per_submission.append(results["execution_time"])
        bodies += sum(t["extra_data"].get("duration_s", 0.0) for t in results["tests"])
        fixtures += sum(t["extra_data"].get("setup_s", 0.0) for t in results["tests"])
    # A test is its body and its fixtures (the reference's expected values, computed once per worker),
    # as in the exports, where nbgrader and otter run both inside the test cell.
    return {"wall_s": wall, "per_submission_s": per_submission, "scores": scores,
            "inside_tests_s": bodies + fixtures, "test_bodies_s": bodies, "test_fixtures_s": fixtures}


def run_nbgrader(assignment, bundle, paths: list[Path], work: Path) -> dict:
    course = work / "course"
    source_nb = export_nbgrader(assignment, bundle, course)
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", assignment.id, "--force"], cwd=course, env=ENV,
                   check=True, capture_output=True)
    release = course / "release" / assignment.id
    for p in paths:
        folder = course / "submitted" / p.stem / assignment.id
        shutil.copytree(release, folder)
        nbgrader_submission(bundle, release / source_nb.name, p, folder / source_nb.name)
    # One autograde call for the whole batch, as an instructor would run it; timestamps in the log give
    # each submission's share.
    command = [str(BIN / "nbgrader"), "autograde", assignment.id,
               "--NbGrader.log_format=%(created)f %(message)s"]
    began = time.time()
    done = subprocess.run(command, cwd=course, env=ENV, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{done.stderr[-3000:]}")
    starts = [float(m.group(1)) for m in re.finditer(r"^(\d+\.\d+) Creating/updating student with ID", done.stderr, re.M)]
    per_submission = [b - a for a, b in zip(starts, starts[1:] + [ended])]
    return {"wall_s": ended - began, "per_submission_s": per_submission,
            "scores": read_nbgrader_scores(course / "gradebook.db", assignment.id)}


def run_otter(assignment, bundle, paths: list[Path], work: Path) -> dict:
    master = export_otter(assignment, bundle, work / "master")
    subprocess.run([str(BIN / "otter"), "assign", "--no-run-tests", str(master), str(work / "dist")], env=ENV,
                   check=True, capture_output=True)
    student_nb = work / "dist" / "student" / master.name
    autograder_zip = next((work / "dist" / "autograder").glob("*.zip"))
    scores, per_submission = {}, []
    for p in paths:
        submission = otter_submission(bundle, student_nb, p, work / "subs" / p.stem / master.name)
        began = time.monotonic()
        subprocess.run([str(BIN / "otter"), "run", "-a", str(autograder_zip), "-o", str(submission.parent),
                        str(submission)], env=ENV, check=True, capture_output=True)
        per_submission.append(time.monotonic() - began)
        scores[p.stem] = read_otter_scores(submission.parent / "results.json")
    return {"wall_s": sum(per_submission), "per_submission_s": per_submission, "scores": scores}


def summarise(name: str, run: dict, count: int) -> dict:
    return {
        "tool": name,
        "load_average_1min_after": round(os.getloadavg()[0], 2),  # other work on the machine skews every number
        "submissions": count,
        "wall_s": round(run["wall_s"], 2),
        "median_per_submission_s": round(statistics.median(run["per_submission_s"]), 3),
        "throughput_per_min": round(60 * count / run["wall_s"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="1.1")
    parser.add_argument("--count", type=int, default=40, help="submissions graded by all three tools")
    parser.add_argument("--scaling", default="10,40,160", help="batch sizes for our own scaling run")
    parser.add_argument("--jobs", type=int, default=2, help="our worker processes (the machine's cores)")
    parser.add_argument("--skip-baselines", action="store_true", help="only our grader (quick look)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (submissions, every results.json)")
    args = parser.parse_args()

    layout = CourseLayout(REPO)
    assignment = find_assignment(layout.source, args.assignment)
    ensure_bundle(layout, assignment)
    bundle = load_bundle(layout.bundles / assignment.id)
    work = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
    try:
        paths = make_submissions(assignment, args.count, work / "submissions")
        print(f"{len(paths)} submissions of {assignment.id} in {work}", flush=True)
        ours = run_ours(assignment, paths, work / "ours", args.jobs)
        print(f"autograder grade: {ours['wall_s']:.1f} s", flush=True)
        rows = [summarise("autograder grade", ours, len(paths))]
        agree: dict[str, bool] = {}
        if not args.skip_baselines:
            nbg = run_nbgrader(assignment, bundle, paths, work / "nbgrader")
            print(f"nbgrader autograde: {nbg['wall_s']:.1f} s", flush=True)
            ott = run_otter(assignment, bundle, paths, work / "otter")
            print(f"otter run: {ott['wall_s']:.1f} s", flush=True)
            rows += [summarise("nbgrader autograde", nbg, len(paths)), summarise("otter run", ott, len(paths))]
            for name, run in (("nbgrader", nbg), ("otter", ott)):
                agree[name] = all(abs(run["scores"][k] - v) < 1e-4 for k, v in ours["scores"].items())
        overhead = ours["wall_s"] * args.jobs / ours["inside_tests_s"]
        steady = sum(ours["per_submission_s"]) / ours["inside_tests_s"]
        scaling = []
        for n in [int(x) for x in args.scaling.split(",") if x]:
            if n == len(paths):
                run = ours  # the same batch was just graded
            else:
                batch = make_submissions(assignment, n, work / f"scaling_{n}")
                run = run_ours(assignment, batch, work / f"ours_{n}", args.jobs)
            # The start-up is paid once per batch: the overhead with it included falls as the batch grows.
            scaling.append({"submissions": n, "wall_s": round(run["wall_s"], 2),
                            "per_submission_s": round(run["wall_s"] / n, 3),
                            "median_per_submission_s": round(statistics.median(run["per_submission_s"]), 3),
                            "overhead": round(run["wall_s"] * args.jobs / run["inside_tests_s"], 3),
                            "overhead_per_submission": round(sum(run["per_submission_s"]) / run["inside_tests_s"], 3)})
            print(f"scaling {n}: {run['wall_s']:.1f} s", flush=True)
        report = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "assignment": assignment.id,
            "jobs": args.jobs,
            "rows": rows,
            "ratios": {r["tool"]: round(r["wall_s"] / rows[0]["wall_s"], 2) for r in rows[1:]},
            "median_ratios": {r["tool"]: round(r["median_per_submission_s"] / rows[0]["median_per_submission_s"], 2)
                              for r in rows[1:]},
            "scores_agree": agree,
            "score_table": {k: {"ours": v, **({"nbgrader": nbg["scores"][k], "otter": ott["scores"][k]}
                                              if not args.skip_baselines else {})}
                            for k, v in ours["scores"].items()},
            "overhead": {"total_wall_x_jobs_over_test_time": round(overhead, 3),
                         "per_submission_time_over_test_time": round(steady, 3),
                         "inside_tests_s": round(ours["inside_tests_s"], 2),
                         "test_bodies_s": round(ours["test_bodies_s"], 2),
                         "test_fixtures_s": round(ours["test_fixtures_s"], 2),
                         "total_wall_x_jobs_over_test_bodies": round(ours["wall_s"] * args.jobs / ours["test_bodies_s"], 3)},
            "scaling": scaling,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        # A quick look at our grader alone must not overwrite the last three-way comparison.
        stem = "grading_throughput_ours" if args.skip_baselines else "grading_throughput"
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / f"{stem}.md").write_text(markdown(report))
        print(markdown(report))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def markdown(r: dict) -> str:
    lines = [
        f"# Grading throughput, {r['assignment']} ({r['date']})",
        "",
        f"Machine: {r['machine']}. Ours with `--jobs {r['jobs']}`, bubblewrap sandbox, warm workers.",
        "",
        "| tool | submissions | total wall (s) | median per submission (s) | submissions/min |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {x['tool']} | {x['submissions']} | {x['wall_s']} | {x['median_per_submission_s']} | "
              f"{x['throughput_per_min']} |" for x in r["rows"]]
    if r["ratios"]:
        lines += ["", "Total wall time relative to ours: "
                  + ", ".join(f"{k} {v}×" for k, v in r["ratios"].items())
                  + "; median per submission: " + ", ".join(f"{k} {v}×" for k, v in r["median_ratios"].items())
                  + ".", "", "Scores agree: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in r["scores_agree"].items()) + "."]
    o = r["overhead"]
    lines += ["", f"Our overhead: total wall × jobs ÷ time inside the hidden tests = {o['total_wall_x_jobs_over_test_time']} "
              f"(start-up included); per-submission grading time ÷ time inside the tests = "
              f"{o['per_submission_time_over_test_time']}. Time inside the tests: {o['inside_tests_s']} s, "
              f"of which {o.get('test_fixtures_s', 0)} s in their fixtures (the reference's expected values); "
              f"over the test bodies alone the first ratio is {o.get('total_wall_x_jobs_over_test_bodies', '–')}.", "", "| batch | total wall (s) | wall per submission (s) | median (s) | overhead | per submission |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s['submissions']} | {s['wall_s']} | {s['per_submission_s']} | {s['median_per_submission_s']} | "
              f"{s.get('overhead', '–')} | {s.get('overhead_per_submission', '–')} |" for s in r["scaling"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
