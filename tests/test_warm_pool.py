"""Warm workers: submissions spawned from one warm process are as isolated as cold starts,
and grade exactly the same."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from autograder.build.samples import blank_submission, reference_submission, with_cell_source
from autograder.grade.bundle import load_bundle
from autograder.grade.pool import WarmWorker
from autograder.grade.warm_boot import WarmBoot
from autograder.grade.runner import Grader
from autograder.grade.sandbox import Sandbox, SandboxUnavailable, check_bwrap
from autograder.grade.student import Limits, StudentNamespace
from conftest import write_notebook

try:
    check_bwrap()
    BWRAP_REASON = ""
except SandboxUnavailable as exc:  # pragma: no cover - CI installs bubblewrap
    BWRAP_REASON = str(exc)

pytestmark = pytest.mark.skipif(bool(BWRAP_REASON), reason=f"SKIPPED LOUDLY: {BWRAP_REASON}")

LEAVE_TRACES = '''
import os, subprocess
open(os.path.expanduser("~/left_behind.txt"), "w").write("x")
open("/tmp/left_behind.txt", "w").write("x")
open(os.path.expanduser("~/support.txt"), "w").write("changed by a submission")
daemon = subprocess.Popen(["sleep", "600"], start_new_session=True)
'''

PROBES = '''
import os

def exists(path):
    return os.path.exists(os.path.expanduser(path))

def read(path):
    return open(os.path.expanduser(path)).read()

def processes():
    """Command lines of every process this program can see."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode().strip())
            except OSError:
                pass
    return sorted(out)

def frozen_objects():
    import gc
    return gc.get_freeze_count()

def collector_on():
    import gc
    return gc.isenabled()

def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

def pid():
    return os.getpid()

def capabilities():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs")}
'''


@pytest.fixture
def warm_worker(tmp_path):
    support = tmp_path / "support"
    support.mkdir()
    (support / "support.txt").write_text("as released")
    worker = WarmWorker(WarmBoot(support, [("setup", "import torch\nWARM = 'yes'")], Limits(test_timeout_s=20),
                                 "lite", "cpu", Sandbox("bwrap"), tmp_path / "warm.log"))
    yield worker
    worker.close()


def spawn_probe(worker, tmp_path, name, extra=""):
    program = worker.spawn(Limits(test_timeout_s=20), tmp_path / f"{name}.log")
    results = program.exec_cells([("probes", PROBES + extra)])
    assert results[0]["ok"], results
    return program


def test_nothing_a_submission_leaves_behind_reaches_the_next(warm_worker, tmp_path):
    first = spawn_probe(warm_worker, tmp_path, "first", LEAVE_TRACES)
    conn = first.fork()
    student = StudentNamespace(conn)
    assert student.exists("~/left_behind.txt") and student.read("~/support.txt") == "changed by a submission"
    assert any(cmd.startswith("sleep 600") for cmd in student.processes())
    conn.close()
    first.close()

    second = spawn_probe(warm_worker, tmp_path, "second")
    conn = second.fork()
    student = StudentNamespace(conn)
    assert not student.exists("~/left_behind.txt")
    assert not student.exists("/tmp/left_behind.txt")
    assert student.read("~/support.txt") == "as released"
    seen = student.processes()
    assert not any(cmd.startswith("sleep") for cmd in seen), seen
    # Its own PID namespace: the program (PID 1) and this test's fork, nothing else (no warm worker).
    assert student.pids() == [1, student.pid()], seen
    conn.close()
    second.close()


def test_spawned_program_has_the_warm_state_and_no_capabilities(warm_worker, tmp_path):
    program = spawn_probe(warm_worker, tmp_path, "caps")
    assert [r["ok"] for r in warm_worker.leading_results] == [True]
    conn = program.fork()
    student = StudentNamespace(conn)
    assert student.WARM == "yes"
    zero = "0" * 16
    assert student.capabilities() == {"CapEff": zero, "CapPrm": zero, "CapBnd": zero, "NoNewPrivs": "1"}
    # What a case inherits is frozen, out of its garbage collector's reach: a full collection
    # would otherwise copy the whole inherited heap into the case (worker._freeze_heap).
    assert student.frozen_objects() > 10_000
    # The warm worker booted with its collector off (worker.py); student code never runs that way.
    assert student.collector_on() is True
    conn.close()
    program.close()


FILL_PROCESSES = '''
import subprocess

def fill_processes():
    """Start sleepers until the process cap refuses one; how many started."""
    kids = []
    try:
        for _ in range(64):
            kids.append(subprocess.Popen(["sleep", "600"]))
    except OSError:
        pass
    return len(kids)
'''


def test_programs_spawned_from_one_warm_worker_have_process_caps_of_their_own(warm_worker, tmp_path):
    """Several graders share one warm worker (executors.ForkedExecutor): a fork bomb must cost only its own program."""
    from autograder.grade.sandbox import ProcessCap

    probe = ProcessCap(8)
    if not probe.active:
        probe.remove()
        pytest.skip("SKIPPED LOUDLY: no writable pids cgroup here; RLIMIT_NPROC caps processes instead")
    probe.remove()
    limits = Limits(test_timeout_s=60, max_processes=8)
    programs, started = [], []
    try:
        for name in ("bomb", "neighbour"):
            program = warm_worker.spawn(limits, tmp_path / f"{name}.log")
            programs.append(program)
            assert program.exec_cells([("fill", FILL_PROCESSES)])[0]["ok"]
            conn = program.fork()
            started.append(StudentNamespace(conn).fill_processes())
            conn.close()
        cgroups = [open(f"/proc/{p.conn.pid}/cgroup").read() for p in programs]
    finally:
        for program in programs:
            program.close()
    # The first program's sleepers are still alive while the second one starts its own.
    assert 3 <= started[0] <= 8 and started[1] == started[0], started
    assert cgroups[0] != cgroups[1]


def test_public_checks_are_prepared_once_in_the_warm_worker_and_case_prints_reach_the_log(tmp_path):
    """``public_tests.prepare()`` runs in the warm worker (its state is inherited, not rebuilt per
    submission), and what a forked case prints is in the submission's log although it ends in os._exit."""
    support = tmp_path / "support"
    support.mkdir()
    (support / "public_tests.py").write_text(
        "import os\nPREPARED_IN = None\n\ndef prepare():\n    global PREPARED_IN\n"
        "    PREPARED_IN = os.readlink('/proc/self/ns/pid')\n"
    )
    worker = WarmWorker(WarmBoot(support, [("setup", "import torch")], Limits(test_timeout_s=20), "lite", "cpu",
                                 Sandbox("bwrap"), tmp_path / "warm.log"))
    try:
        program = spawn_probe(worker, tmp_path, "prepared", "def prepared_in():\n"
                                                           "    import public_tests\n"
                                                           "    return public_tests.PREPARED_IN\n"
                                                           "def pid_namespace():\n"
                                                           "    return os.readlink('/proc/self/ns/pid')\n")
        conn = program.fork()
        student = StudentNamespace(conn)
        # Set in the warm worker's PID namespace, before this submission's program was forked from it.
        assert student.prepared_in() not in (None, student.pid_namespace())
        assert conn.request({"op": "exec_cells", "cells": [{"id": "p", "source": "print('said by a case')"}]})[0]["ok"]
        conn.close()
        program.close()
        assert "said by a case" in (tmp_path / "prepared.log").read_text()
    finally:
        worker.close()


def _outcomes(result):
    return [(t.exercise, t.name, t.score, t.passed, t.reason) for e in result.exercises for t in e.tests]


def test_warm_and_cold_grade_identically(toy_layout, toy_assignment, tmp_path):
    bundle = load_bundle(toy_layout.bundles / toy_assignment.id)
    reference = reference_submission(toy_assignment)
    submissions = {
        "reference": reference,
        "blank": blank_submission(toy_assignment),
        "bug": with_cell_source(reference, "softmax", "def softmax(x):\n    return x.exp() / x.exp().sum()\n"),
        "crash": with_cell_source(reference, "softmax", "import os\nos._exit(1)\n"),
    }
    paths = {name: write_notebook(tmp_path / f"{name}.ipynb", nb) for name, nb in submissions.items()}
    timings = {}
    for warm in (False, True):
        with Grader(bundle, sandbox="bwrap", warm=warm) as grader:
            started = time.monotonic()
            results = {name: grader.grade_path(path) for name, path in paths.items()}
            timings[warm] = time.monotonic() - started
            assert grader.warm is warm, grader.warm_note
        if not warm:
            cold = results
    for name in submissions:
        assert _outcomes(results[name]) == _outcomes(cold[name]), name
    assert [results[n].score for n in ("reference", "blank", "bug", "crash")] == [10, 0, 6, 0]
    assert timings[True] < timings[False], timings


def test_falls_back_to_cold_start_where_submissions_cannot_be_isolated(toy_layout, toy_assignment, tmp_path, monkeypatch):
    """Without the capabilities to mount a fresh home, the grader says so and starts each submission cold."""
    original = Sandbox.warm_command
    monkeypatch.setattr(Sandbox, "warm_command", lambda self, inner, support: [
        arg for arg in original(self, inner, support) if arg not in ("--cap-add", "CAP_SYS_ADMIN", "CAP_SETPCAP")])
    path = write_notebook(tmp_path / "reference.ipynb", reference_submission(toy_assignment))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox="bwrap") as grader:
            result = grader.grade_path(path)
            assert not grader.warm
    assert result.score == 10
    assert any("could not isolate" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_a_sandbox_that_cannot_start_torch_stops_grading_instead_of_failing_every_student(
        toy_layout, toy_assignment, tmp_path, monkeypatch):
    """Falling back to cold starts is for a warm worker that cannot isolate submissions. Where the sandbox
    cannot start a student program at all, cold starts would fail too and blame every student: the full
    probe runs then, and its SandboxUnavailable (with the fix named) stops the batch."""
    from autograder.grade import sandbox as sandbox_module

    with Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox="bwrap") as grader:
        monkeypatch.setitem(sandbox_module.PROBES, "full", "import no_module_of_this_name")
        sandbox_module.check_bwrap.cache_clear()
        try:
            with pytest.raises(SandboxUnavailable, match="--no-sandbox"):
                grader.disable_warm("the warm worker did not start")
            assert grader.warm  # nothing was switched to cold starts
        finally:
            sandbox_module.check_bwrap.cache_clear()


def test_the_boot_runs_the_leading_cells_and_prepares_the_public_checks_in_one_request(tmp_path):
    """The cells go out as the process starts (the worker runs them once its imports are done); the
    public checks' preparation rides along but is not one of the program's cells."""
    support = tmp_path / "support"
    support.mkdir()
    (support / "public_tests.py").write_text("def prepare():\n    raise RuntimeError('prepare may fail')\n")
    boot = WarmBoot(support, [("setup", "import torch\nSET_UP = 1"), ("more", "MORE = 2")], Limits(test_timeout_s=20),
                    "lite", "cpu", Sandbox("bwrap"), tmp_path / "warm.log")
    worker = WarmWorker(boot, wait=False)
    try:
        assert worker.leading_results is None
        worker.ready()
        assert [(r["id"], r["ok"]) for r in worker.leading_results] == [("setup", True), ("more", True)]
        program = spawn_probe(worker, tmp_path, "after-boot", "def values():\n    return SET_UP + MORE\n")
        conn = program.fork()
        assert StudentNamespace(conn).values() == 3
        conn.close()
        program.close()
    finally:
        worker.close()
    assert not os.path.exists(f"/proc/{boot.proc.pid}")


def _kernel_collapses_huge_pages() -> bool:
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    try:
        enabled = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return False
    return release >= (6, 1) and "[never]" not in enabled


def test_programs_inherit_the_warm_workers_memory_in_huge_pages(warm_worker, tmp_path):
    """Fewer page-table entries to copy for every test case's fork (worker.collapse_into_huge_pages)."""
    if not _kernel_collapses_huge_pages():
        pytest.skip(f"this kernel ({os.uname().release}) cannot collapse memory into huge pages (MADV_COLLAPSE)")
    program = spawn_probe(warm_worker, tmp_path, "huge", (
        "def huge_kib():\n"
        "    rollup = open('/proc/self/smaps_rollup').read().splitlines()\n"
        "    return int(next(l for l in rollup if l.startswith('AnonHugePages')).split()[1])\n"))
    conn = program.fork()
    try:
        assert StudentNamespace(conn).huge_kib() >= 10 * 2048  # torch's heap alone fills dozens
    finally:
        conn.close()
        program.close()


HOOK_PROBE = (
    "import threading, time\n"
    "HOOK_RAN = []\n"
    "os.register_at_fork(after_in_child=lambda: HOOK_RAN.append(1))\n"
    "def hook_ran():\n"
    "    return len(HOOK_RAN)\n"
    "def start_thread():\n"
    "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
)


def test_test_cases_fork_without_the_libraries_hooks_unless_the_program_has_threads(warm_worker, tmp_path):
    """lean_fork on the real path: a program with one thread skips the hooks; one that started a thread
    (the student's code may) gets os.fork and its hooks, which re-create the locks that thread may hold."""
    program = spawn_probe(warm_worker, tmp_path, "hooks", HOOK_PROBE)
    try:
        conn = program.fork()
        try:
            assert StudentNamespace(conn).hook_ran() == 0
        finally:
            conn.close()
        StudentNamespace(program.conn).start_thread()  # in the program itself: every later case inherits it
        conn = program.fork()
        try:
            assert StudentNamespace(conn).hook_ran() == 1
        finally:
            conn.close()
    finally:
        program.close()
