"""Run a bundle's hidden tests against one submission.

A :class:`Grader` holds what is shared by every submission of a batch (the
reference solution, the hidden tests, session fixtures such as loaded models).
:meth:`Grader.grade` starts the submission's program once, then gives every
test case a fresh fork of it, so a crash, a hang or a monkeypatch in one case
touches nothing else.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from autograder import __version__
from autograder.checks import CheckFailed, default_tolerances
from autograder.grade.bundle import Bundle
from autograder.grade.results import ExerciseResult, SubmissionResult, TestOutcome
from autograder.grade.student import (
    Limits,
    StudentConnection,
    StudentCrashed,
    StudentError,
    StudentNamespace,
    SpawnedProgram,
    StudentProcess,
    StudentTimeout,
)
from autograder.grade.fingerprint import exercise_fingerprints
from autograder.grade.gpu_slots import MEMORY_FRACTION_VAR, cap_this_process
from autograder.grade.docker_backend import DockerProgram, DockerSettings, docker_client
from autograder.grade.numerics import make_repeatable
from autograder.grade.pool import WarmWorker, WarmWorkerUnavailable
from autograder.grade.warm_boot import WarmBoot, warm_cells
from autograder.grade.sandbox import NO_SANDBOX_NOTE, check_bwrap, make_sandbox
from autograder.grade.submission import Submission, SubmissionError, build_program, read_submission, source_hash
from autograder.testing import HiddenTest, collect, resolve_fixture, session_fixtures

_PER_CASE_FIXTURES = frozenset({"student"})
PUBLIC_CHECKS_FILE = "student/public_tests.py"
PUBLIC_CHECKS_TIMEOUT_S = 60.0  # all of a submission's public checks together
PUBLIC_CHECK_TIMEOUT_S = 20.0  # one exercise's
PUBLIC_CHECK_SKIPPED = "(Not run again here: this exercise's code ran past the time limit in the hidden tests.)"
PUBLIC_CHECK_TIMED_OUT = "(The public check did not finish within {seconds:g} s: look for a loop that never ends.)"
PUBLIC_OUTPUT_CHARS = 2000
NOT_ATTEMPTED = "Not attempted yet"


def run_seed(assignment_seed: int, cohort_seed: int | None) -> int:
    """The seed hidden tests draw their random inputs from.

    Without a cohort it is the assignment's own seed. A cohort's seed mixes in,
    so each cohort gets other inputs and outputs copied from an earlier cohort
    match nothing.
    """
    if cohort_seed is None:
        return assignment_seed
    digest = hashlib.sha256(f"{assignment_seed}:{cohort_seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def load_hidden_tests(bundle: Bundle) -> tuple[list[HiddenTest], dict[str, Callable[..., Any]], dict[str, str]]:
    """The bundle's hidden tests and fixtures, checked against its exercises, and each test file's text."""
    tag = bundle.assignment.replace(".", "_").replace("-", "_")
    test_files = sorted(p for p in bundle.manifest["files"] if p.startswith("hidden/") and p.endswith(".py"))
    modules = [bundle.load_module(rel, f"autograder_hidden_{tag}_{i}") for i, rel in enumerate(test_files)]
    tests, fixtures = collect(modules)
    declared = {ex["name"] for ex in bundle.manifest["exercises"]}
    unknown = {t.exercise for t in tests} - declared
    if unknown:
        raise ValueError(f"hidden tests grade undeclared exercises: {sorted(unknown)}")
    untested = declared - {t.exercise for t in tests}
    if untested:
        raise ValueError(f"exercises without hidden tests: {sorted(untested)}")
    return tests, fixtures, {rel: (bundle.root / rel).read_text() for rel in test_files}


def bundle_fingerprints(bundle: Bundle, profile: str, device: str, cohort_seed: int | None = None) -> dict[str, str]:
    """What a :class:`Grader` of these settings would stamp on each exercise, without loading the reference."""
    tests, fixtures, sources = load_hidden_tests(bundle)
    seed = run_seed(int(bundle.manifest.get("seed", 0)), cohort_seed)
    return exercise_fingerprints(
        bundle.manifest, sources, tests, fixtures, {"profile": profile, "device": str(torch.device(device)), "seed": seed}
    )


class Grader:
    def __init__(
        self,
        bundle: Bundle,
        profile: str = "lite",
        device: str = "cpu",
        limits: Limits | None = None,
        only: list[str] | None = None,
        sandbox: str = "bwrap",
        submission_timeout_s: float | None = None,
        warm: bool = True,
        cohort_seed: int | None = None,
        fresh_program_per_case: bool | None = None,
        public_checks: bool = True,
        docker: "DockerSettings | None" = None,
        warm_boot: WarmBoot | None = None,
        sandbox_probe: str = "full",
    ):
        """``warm_boot``: a warm worker already booting for this bundle (GraderSpec.make_grader starts one
        before torch loads here); this grader takes it over. ``sandbox_probe``: how the sandbox is
        checked first (sandbox.PROBES; "none" where the caller has just checked it on this machine).
        """
        self.bundle = bundle
        self.profile = profile
        self.device = device
        self.limits = limits or bundle.limits
        self.only = only
        self.sandbox = make_sandbox(sandbox, probe=sandbox_probe)
        self.submission_timeout_s = float(
            submission_timeout_s if submission_timeout_s is not None else bundle.manifest.get("submission_timeout_s", 600)
        )
        os.environ["AUTOGRADER_PROFILE"] = profile
        os.environ["AUTOGRADER_DEVICE"] = device
        make_repeatable(device)  # before the reference or any fixture touches the GPU
        if device.startswith("cuda"):
            cap_this_process()  # this worker's share of its GPU (gpu_slots); the trusted side never forks
        self._release_nb = bundle.release_notebook()
        # Warm worker: the leading setup cells (imports, model loads) run once per
        # batch; each submission is spawned from there in fresh namespaces.
        self.leading_cells = warm_cells(bundle, device)
        # The section's public checks (student/public_tests.py), run once more at grading time so that
        # the feedback page shows what the student would have seen; they never count towards a score.
        self.public_checks = public_checks and PUBLIC_CHECKS_FILE in bundle.manifest["files"]
        self.warm = warm and self.sandbox.kind == "bwrap"
        self.warm_note = "" if self.warm or not warm else "warm workers need the bubblewrap sandbox"
        self._warm_worker: WarmWorker | None = None
        self._support: Path | None = None
        self.docker = docker or DockerSettings()
        self._docker_client = docker_client() if self.sandbox.kind == "docker" else None
        if warm_boot is not None:
            # Booting it (imports, the leading cells) takes seconds in its own process:
            # it overlaps with loading the reference below and with warm_up()'s fixtures.
            self._support = warm_boot.support
            if self.warm:
                self._warm_worker = WarmWorker(warm_boot, wait=False)
            else:
                warm_boot.close()
        tag = bundle.assignment.replace(".", "_").replace("-", "_")
        # The reference may switch torch's grad mode for itself (a notebook that only
        # runs models forward): keep that mode for this assignment's grading only, and
        # give the rest of the process (other graders, the caller) back its own.
        outer_grad_mode = torch.is_grad_enabled()
        try:
            self.reference = bundle.load_module("reference.py", f"autograder_reference_{tag}")
            self.tests, self.fixtures, hidden_sources = load_hidden_tests(bundle)
        except BaseException:
            self.close()  # the warm worker started above, if any
            raise
        finally:
            self.grad_mode = torch.is_grad_enabled()
            torch.set_grad_enabled(outer_grad_mode)
        self.seed = run_seed(int(bundle.manifest.get("seed", 0)), cohort_seed)
        # See _RunningProgram: forking a program per case is for CPUs only.
        self.fresh_program_per_case = device.startswith("cuda") if fresh_program_per_case is None else fresh_program_per_case
        self._session: dict[str, Any] = {
            "reference": self.reference,
            "profile": profile,
            "device": torch.device(device),
            "seed": self.seed,
            "bundle_dir": bundle.root,
        }
        self.fingerprints = exercise_fingerprints(
            bundle.manifest, hidden_sources, self.tests, self.fixtures,
            {"profile": profile, "device": str(torch.device(device)), "seed": self.seed},
        )

    # ------------------------------------------------------------------ public
    def grade_path(self, path: Path) -> SubmissionResult:
        """Grade a file; an unreadable file still gets a result, with a message."""
        try:
            submission = read_submission(path)
        except SubmissionError as exc:
            return self._unreadable(path, str(exc))
        return self.grade(submission)

    def grade(self, submission: Submission) -> SubmissionResult:
        with torch.set_grad_enabled(self.grad_mode):
            return self._grade(submission)

    def _grade(self, submission: Submission) -> SubmissionResult:
        started = time.monotonic()
        manifest = self.bundle.manifest
        result = SubmissionResult(
            assignment=self.bundle.assignment,
            submission=submission.name,
            submission_sha256=submission.sha256,
            bundle_hash=self.bundle.bundle_hash,
            grader_version=__version__,
            profile=self.profile,
            device=self.device,
            free_points=float(manifest.get("free_points", 0.0)),
        )
        program = build_program(self._release_nb, manifest["setup_cells"], self.bundle.answer_cell_ids(), submission)
        workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
        running = _RunningProgram(self, workdir, program.cells)
        try:
            self.bundle.stage_support_files(workdir / "home")
            running.start()
            deadline = started + self.submission_timeout_s
            for ex in manifest["exercises"]:
                if self.only and ex["name"] not in self.only:
                    continue
                result.exercises.append(self._grade_exercise(ex, running, program, deadline))
            # The public checks' output helps where points were lost; elsewhere the student
            # saw it in their own notebook. Running them for every exercise doubled grading time.
            lost = [e.name for e in result.exercises if e.score < e.max_score]
            if self.public_checks and lost and not self.only and not running.setup_error:
                timed_out = {e.name for e in result.exercises if any(t.reason == "timeout" for t in e.tests)}
                result.public_output = self._public_output(running, deadline, lost, timed_out)
            result.output = _overall_output(program, running.cell_results, running.setup_error, running.output_tail())
            if running.restarts:
                result.output = (
                    f"Your program stopped while being tested and was restarted {running.restarts} time(s); "
                    "the tests it was running when it stopped scored 0.\n\n" + result.output
                ).strip()
            if not self.sandbox.isolated:
                result.output = f"Note: {NO_SANDBOX_NOTE}.\n\n{result.output}".strip()
            result.sandbox = self.sandbox.kind
        finally:
            running.close()
            shutil.rmtree(workdir, ignore_errors=True)
        result.execution_time = time.monotonic() - started
        return result

    def close(self) -> None:
        """Stop the warm worker, if any (it also dies with this process)."""
        if self._warm_worker is not None:
            self._warm_worker.close()
            self._warm_worker = None
        if self._support is not None:
            shutil.rmtree(self._support.parent, ignore_errors=True)
            self._support = None

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm_worker(self, wait: bool = True) -> "WarmWorker | None":
        """The running warm worker, started (again) if needed; None where warm workers cannot run.

        ``wait=False`` returns as soon as its process is started; its ``ready()`` waits for the rest.
        """
        if not self.warm:
            return None
        if self._warm_worker is not None and self._warm_worker.alive:
            return self._warm_worker
        if self._warm_worker is not None:
            self._warm_worker.close()
        support = self.support_dir()
        try:
            boot = WarmBoot(support, self.leading_cells, self.limits, self.profile, self.device, self.sandbox,
                            support.parent / "warm_worker.log")
            self._warm_worker = WarmWorker(boot, wait=wait)
        except WarmWorkerUnavailable as exc:
            self.disable_warm(str(exc))
        return self._warm_worker

    def warm_up(self) -> float:
        """Do now, once, what the first submission would otherwise wait for; returns the seconds it took.

        The warm worker starts in its own process while this one computes the
        fixtures every test case shares (the reference's expected values, models),
        so the two overlap on a multi-core machine. A fixture that raises is left to
        the tests that ask for it: they report the error as they always did.
        """
        began = time.monotonic()
        worker = self.warm_worker(wait=False)
        failure: list[str] = []

        def wait_for_worker() -> None:
            try:
                worker.ready()
            except WarmWorkerUnavailable as exc:
                failure.append(str(exc))

        waiting = threading.Thread(target=wait_for_worker, name="warm-worker-start") if worker else None
        if waiting:
            waiting.start()
        try:
            tests = [t for t in self.tests if not self.only or t.exercise in self.only]
            with torch.set_grad_enabled(self.grad_mode):
                for name in session_fixtures(tests, self.fixtures, _PER_CASE_FIXTURES):
                    try:
                        resolve_fixture(name, {}, self._session, self.fixtures, _PER_CASE_FIXTURES)
                    except Exception:  # noqa: BLE001 - see the docstring
                        pass
        finally:
            if waiting:
                waiting.join()
        if failure:
            self.disable_warm(failure[0])
        return time.monotonic() - began

    def share_warm_worker(self, lock) -> None:
        """Let processes forked from this one spawn submissions from its warm worker (see executors)."""
        if self._warm_worker is not None:
            self._warm_worker.share(lock)

    def support_dir(self) -> Path:
        """The assignment's support files, staged once per batch (read-only to warm workers and containers)."""
        if self._support is None:
            self._support = self.bundle.staged_support_dir()
        return self._support

    def disable_warm(self, reason: str) -> None:
        """Grade with a cold start per submission from now on, and say why once.

        Unless the sandbox cannot start a student program at all: then cold starts would
        fail too, and every student would be told their notebook could not run.
        :class:`~.sandbox.SandboxUnavailable` stops the batch instead, with the fix named.
        """
        if self.sandbox.kind == "bwrap":
            check_bwrap("full")
        self.warm, self.warm_note, self._warm_worker = False, reason, None
        warnings.warn(f"grading without warm workers (each submission starts cold): {reason}", stacklevel=2)

    # ---------------------------------------------------------------- helpers
    def _grade_exercise(self, ex: dict, running: "_RunningProgram", program, deadline: float) -> ExerciseResult:
        tests = [t for t in self.tests if t.exercise == ex["name"]]
        total_weight = sum(t.weight for t in tests)
        result = ExerciseResult(ex["name"], float(ex["points"]), fingerprint=self.fingerprints[ex["name"]])
        for test in tests:
            max_score = float(ex["points"]) * test.weight / total_weight
            outcome = TestOutcome(ex["name"], test.name, 0.0, max_score, passed=False)
            if running.setup_error:
                outcome.output, outcome.reason = running.setup_error, "crash"
            elif time.monotonic() > deadline:
                outcome.output, outcome.reason = "not run: the submission's total time limit was reached", "skipped"
            else:
                self._run_case(test, running, outcome, deadline)
            context = _exercise_context(ex, program, running.cell_results, self.bundle.manifest.get("answer_stubs", {}))
            if outcome.passed:
                outcome.score = max_score
            elif context.startswith(NOT_ATTEMPTED):
                outcome.output, outcome.reason = context, "not_attempted"
            elif context and outcome.reason != "skipped":
                outcome.output = f"{context}\n{outcome.output}".strip()
            result.tests.append(outcome)
        return result

    def _run_case(self, test: HiddenTest, running: "_RunningProgram", outcome: TestOutcome, deadline: float) -> None:
        try:
            conn = running.fork()
        except StudentCrashed as exc:
            outcome.output, outcome.reason = str(exc), "crash"
            return
        conn.deadline = min(deadline, time.monotonic() + self.limits.test_timeout_s)
        try:
            resolving = time.monotonic()
            try:
                kwargs = self._resolve(test.fn, conn)
            finally:
                outcome.setup_s = time.monotonic() - resolving
            with default_tolerances(self.bundle.manifest.get("tolerances", {})):
                began = time.monotonic()
                try:
                    test.fn(**kwargs)
                finally:
                    outcome.duration_s = time.monotonic() - began
            outcome.passed, outcome.reason = True, "passed"
        except Exception as exc:  # noqa: BLE001 - every failure is the student's result, explained
            outcome.reason, outcome.output = explain_failure(exc)
        finally:
            conn.close()
            if outcome.reason in ("timeout", "crash"):
                # Whatever the case left running (orphans of a fork bomb, a stopped
                # child) must not reach the next case: start the program afresh.
                running.retire()

    def _public_output(self, running: "_RunningProgram", deadline: float, names: list[str],
                       timed_out: set[str]) -> dict[str, str]:
        """Exercise -> what its public checks print for this submission, run in the student's own process.

        One exercise's check at a time: one that hangs or kills the program costs its own output only, and
        the rest run in a fresh copy. An exercise whose hidden tests already ran out of time is not checked
        again (its check would hang too, and the student would wait for nothing); the page says why.
        """
        said = {name: PUBLIC_CHECK_SKIPPED for name in names if name in timed_out}
        pending = [name for name in names if name not in timed_out]
        stop = min(deadline, time.monotonic() + PUBLIC_CHECKS_TIMEOUT_S)
        conn: StudentConnection | None = None
        try:
            while pending and time.monotonic() < stop:
                name = pending.pop(0)
                if conn is None:
                    try:
                        conn = running.fork()
                    except StudentCrashed:
                        break
                conn.deadline = min(stop, time.monotonic() + PUBLIC_CHECK_TIMEOUT_S)
                try:
                    cell = {"id": "public-checks", "source": _public_checks_cell([name])}
                    ran = conn.request({"op": "exec_cells", "cells": [cell]})
                    if ran and ran[0].get("ok"):
                        printed = dict(StudentNamespace(conn)._autograder_public_output)
                        if name in printed:  # student-side data: believed only as text, and only this much of it
                            said[name] = str(printed[name])[-PUBLIC_OUTPUT_CHARS:]
                except (StudentTimeout, StudentCrashed, StudentError, TypeError, ValueError) as exc:
                    if isinstance(exc, StudentTimeout):
                        said[name] = PUBLIC_CHECK_TIMED_OUT.format(seconds=PUBLIC_CHECK_TIMEOUT_S)
                    conn.close()
                    conn = None
                    running.retire()  # what it left running must not reach the next check
        finally:
            if conn is not None:
                conn.close()
        return said

    def _resolve(self, fn: Callable[..., Any], conn: StudentConnection) -> dict[str, Any]:
        case_values = {"student": StudentNamespace(conn)}
        return {
            name: resolve_fixture(name, case_values, self._session, self.fixtures, _PER_CASE_FIXTURES)
            for name in inspect.signature(fn).parameters
        }

    def _unreadable(self, path: Path, message: str) -> SubmissionResult:
        import hashlib

        data = path.read_bytes() if path.exists() else b""
        result = SubmissionResult(
            assignment=self.bundle.assignment,
            submission=path.stem,
            submission_sha256=hashlib.sha256(data).hexdigest(),
            bundle_hash=self.bundle.bundle_hash,
            grader_version=__version__,
            profile=self.profile,
            device=self.device,
            output=message,
            error=message,
        )
        for ex in self.bundle.manifest["exercises"]:
            er = ExerciseResult(ex["name"], float(ex["points"]))
            er.tests.append(TestOutcome(ex["name"], "submission readable", 0.0, float(ex["points"]), False, message, "crash"))
            result.exercises.append(er)
        return result


class _RunningProgram:
    """A submission's program in its student process, restarted if it dies.

    A test case that kills the whole program (not just its own fork) costs that
    case; the program is started again for the remaining tests, a bounded
    number of times.
    """

    MAX_RESTARTS = 3

    def __init__(self, grader: Grader, workdir: Path, cells: list[tuple[str, str]]):
        self.grader = grader
        self.workdir = workdir
        self.cells = cells
        self.proc: StudentProcess | SpawnedProgram | None = None
        self.cell_results: dict[str, dict] = {}
        self.setup_error: str | None = None
        self.restarts = 0
        self._retired = False
        self._used = False
        self._tails: list[str] = []
        # CUDA does not survive fork(): a child of a process that touched the GPU
        # cannot use it. On a GPU each test case therefore runs in the program
        # itself, and the next case gets the program started afresh (from the
        # warm worker, which never touches CUDA): the same isolation, paid for
        # by re-running the submission's cells.
        self.fresh_per_case = grader.fresh_program_per_case

    def start(self) -> None:
        g = self.grader
        cells, done = self.cells, []
        self.proc = None
        worker = g.warm_worker()
        if worker is not None:
            # The program's first cells are the release's leading setup cells, already run there.
            assert [cid for cid, _ in self.cells[: len(g.leading_cells)]] == [cid for cid, _ in g.leading_cells]
            try:
                self.proc = worker.spawn(g.limits, self.workdir / "student_output.log")
                cells, done = self.cells[len(g.leading_cells):], worker.leading_results
            except WarmWorkerUnavailable as exc:
                g.disable_warm(str(exc))
            except StudentCrashed:
                pass  # the worker died: this submission starts cold, the next gets a new worker
        if self.proc is None and g.sandbox.kind != "docker":
            self.proc = StudentProcess(self.workdir, g.limits, g.profile, g.device, g.sandbox)
        try:
            if self.proc is None:
                self.proc = DockerProgram(g._docker_client, g.docker, g.support_dir(), g.limits, g.profile, g.device)
            self.cell_results = {r["id"]: r for r in [*done, *self.proc.exec_cells(cells)]}
            self.setup_error = None
        except (StudentCrashed, StudentTimeout, StudentError) as exc:
            self.cell_results, self.setup_error = {}, f"your notebook could not be run: {exc}"

    def retire(self) -> None:
        """Start the program again before the next test case."""
        self._retired = True

    def fork(self) -> StudentConnection:
        assert self.proc is not None
        if self.fresh_per_case:
            self._retired = self._retired or self._used
            self._used = True
        if self._retired:
            self._retired = False
            self._tails.append(self.proc.output_tail())
            self.proc.close()
            self.start()
            if self.setup_error:
                raise StudentCrashed(self.setup_error)
        if self.fresh_per_case:
            self.proc.conn.ensure_alive()
            return self.proc.conn
        try:
            return self.proc.fork()
        except StudentCrashed:
            if self.restarts >= self.MAX_RESTARTS:
                raise
            self.restarts += 1
            self._tails.append(self.proc.output_tail())
            self.proc.close()
            self.start()
            if self.setup_error:
                raise StudentCrashed(self.setup_error) from None
            return self.proc.fork()

    def output_tail(self) -> str:
        current = self.proc.output_tail() if self.proc else ""
        return "\n".join(t for t in [*self._tails, current] if t.strip())[-4000:]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()


def _exercise_context(ex: dict, program, cell_results: dict, stubs: dict) -> str:
    notes = []
    for cid in ex["cells"]:
        source = program.answers.get(cid)
        if cid in program.notes:
            notes.append(f"Note: {program.notes[cid]}.")
        elif source is not None and stubs.get(cid) == source_hash(source):
            notes.append(f"{NOT_ATTEMPTED}: cell {cid!r} is unchanged from the release.")
            continue
        cell = cell_results.get(cid)
        if cell is not None and not cell["ok"]:
            notes.append(f"Your cell {cid!r} raised an error when run:\n{cell['error'].strip()}")
    return "\n".join(notes)


def explain_failure(exc: Exception) -> tuple[str, str]:
    """(reason, student-facing message) for an exception raised while a test case ran."""
    if isinstance(exc, CheckFailed):
        return "wrong", str(exc)
    if isinstance(exc, StudentError) and exc.type_name == "OutOfMemoryError":
        return "error", (
            f"your code ran out of GPU memory in this test ({_gpu_cap_words()}). Only this test is affected. "
            "Look for tensors kept alive without need (a growing list, a cache, gradients you never use: "
            "torch.no_grad() or .detach()) or a larger intermediate than the exercise asks for.\n"
            + _student_error_text(exc)
        )
    if isinstance(exc, StudentError):
        return "error", _student_error_text(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):  # on our side: not the student's doing
        torch.cuda.empty_cache()
        return "error", (
            "the grader ran out of GPU memory in this test; this is not a fault in your code. "
            "Your instructor can regrade it (with fewer --workers-per-gpu)."
        )
    if isinstance(exc, StudentTimeout):
        return "timeout", str(exc)
    if isinstance(exc, StudentCrashed):
        return "crash", str(exc)
    if isinstance(exc, AssertionError):
        return "wrong", str(exc) or "a check failed"
    # e.g. the student returned the wrong kind of object
    return "wrong", f"your code returned something the test could not use ({type(exc).__name__}: {exc})"


def _public_checks_cell(names: list[str]) -> str:
    """Student-side code: run ``public_tests.check(name)`` per exercise, keeping what each prints."""
    return (
        "import contextlib as _ag_contextlib, io as _ag_io\n"
        "_autograder_public_output = {}\n"
        "import public_tests as _ag_public\n"
        f"for _ag_name in {names!r}:\n"
        "    if _ag_name not in getattr(_ag_public, 'CHECKS', {}):\n"
        "        continue\n"
        "    _ag_buffer = _ag_io.StringIO()\n"
        # stderr is progress bars and warnings from loading models: not what the checks say
        "    with _ag_contextlib.redirect_stdout(_ag_buffer), _ag_contextlib.redirect_stderr(_ag_io.StringIO()):\n"
        "        try:\n"
        "            _ag_public.check(_ag_name)\n"
        "        except Exception as _ag_error:\n"
        "            print(f'the public check of {_ag_name} stopped: {type(_ag_error).__name__}: {_ag_error}')\n"
        "    _autograder_public_output[_ag_name] = _ag_buffer.getvalue()\n"
    )


def _gpu_cap_words() -> str:
    share = os.environ.get(MEMORY_FRACTION_VAR)
    return f"each grading process may use {float(share):.0%} of the GPU" if share else "the GPU's memory is shared"


def _student_error_text(exc: StudentError) -> str:
    lines = exc.traceback_text.strip().splitlines()
    shown = "\n".join(lines[-30:])
    return f"your code raised {exc.type_name}: {exc.message}\n{shown}".strip()


def _overall_output(program, cell_results: dict, setup_error: str | None, tail: str) -> str:
    parts = []
    if setup_error:
        parts.append(setup_error)
    failed_setup = [cid for cid, r in cell_results.items() if not r["ok"] and cid not in program.answers]
    if failed_setup:
        parts.append(f"Setup cells failed to run: {', '.join(failed_setup)} (this is likely a grader problem).")
    if tail.strip():
        parts.append("Output printed by your notebook while grading (last part):\n" + tail)
    return "\n\n".join(parts)
