"""Faults: the grader is killed mid-batch (SIGKILL, no chance to clean up) or interrupted
(Ctrl-C), and run again.

Every submission must then have exactly one correct result: none lost, none
duplicated, no half-written results.json; an interruption also leaves no
process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from autograder.build.samples import blank_submission, reference_submission, with_cell_source
from autograder.gradebook import open_gradebook
from conftest import available_sandbox, write_notebook

KILL_AFTER = [1, 3, 5]  # results on disk when each SIGKILL lands


@pytest.fixture(autouse=True)
def ctrl_c_reaches_the_grader():
    """Ctrl-C as a terminal user has it, however the suite was started. A shell starts a background job
    (`cmd &` without job control) with SIGINT ignored, and an ignored signal stays ignored across exec: the
    graders these tests start would never see their Ctrl-C. A handled signal is reset to the default on exec,
    so a handler here gives every child Python's own KeyboardInterrupt again."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def batch(toy_assignment, tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    reference = reference_submission(toy_assignment)
    expected = {}
    for i in range(4):
        write_notebook(folder / f"ref{i}.ipynb", reference)
        expected[f"ref{i}"] = 10
        write_notebook(folder / f"blank{i}.ipynb", blank_submission(toy_assignment))
        expected[f"blank{i}"] = 0
    write_notebook(folder / "slow.ipynb", with_cell_source(
        reference, "softmax", "import time\ndef softmax(x):\n    time.sleep(1)\n    return x.softmax(-1)\n"))
    expected["slow"] = 10
    return folder, expected


def command(toy_layout, folder, out):
    cmd = [sys.executable, "-m", "autograder", "--root", str(toy_layout.root), "grade", "0.1", str(folder),
           "--out", str(out), "--db", str(out / "book.sqlite")]
    return cmd + (["--no-sandbox"] if available_sandbox() == "none" else [])


def finished(out):
    return sorted(p.parent.name for p in out.glob("*/results.json"))


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_loses_and_duplicates_nothing(toy_layout, batch, tmp_path):
    folder, expected = batch
    out = tmp_path / "out"
    cmd = command(toy_layout, folder, out)
    injected = 0
    for target in KILL_AFTER:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(finished(out)) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the grader and everything it started, mid-submission
            injected += 1
        proc.wait()
    assert injected >= 2, "the batch finished before the faults could be injected"
    assert subprocess.run(cmd, capture_output=True).returncode == 0

    results = {name: json.loads((out / name / "results.json").read_text()) for name in finished(out)}
    assert {name: r["score"] for name, r in results.items()} == expected
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"], "half-written files left"
    with open_gradebook(str(out / "book.sqlite")).connect() as db:
        rows = db.execute(text("select submission, score from submissions")).all()
    assert sorted(rows) == sorted(expected.items())


STUCK = "import subprocess\n\ndef softmax(x):\n    subprocess.run(['sleep', '987654'])\n    return x.softmax(-1)\n"


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and marker in open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode():
                found.append(int(pid))
        except OSError:
            pass
    return found


def _session_members(sid: int) -> list[int]:
    members = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[3]) == sid:
                members.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return members


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_abandons_the_work_in_flight_at_once_and_keeps_what_was_graded(toy_layout, toy_assignment, tmp_path,
                                                                             jobs):
    """Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) while a submission is stuck:
    the grader stops within seconds, not after the stuck one's time limit, says what was saved, leaves no
    process behind (sandboxed ones included), and the next run grades only what is missing."""
    folder, out = tmp_path / "subs", tmp_path / "out"
    folder.mkdir()
    reference = reference_submission(toy_assignment)
    for i in range(3):
        write_notebook(folder / f"a_ref{i}.ipynb", reference)
    stuck = write_notebook(folder / "z_stuck.ipynb", with_cell_source(reference, "softmax", STUCK))
    cmd = command(toy_layout, folder, out) + ["--jobs", str(jobs), "--test-timeout", "300"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (len(finished(out)) == 3 and _processes_with("sleep 987654")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        assert _processes_with("sleep 987654"), "the stuck submission never started"
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # impatient: a second Ctrl-C must not cut the clean-up short
        output, _ = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, output
    assert took < 20, f"Ctrl-C took {took:.1f} s to stop the batch"
    assert "interrupted" in output and "3 of 4 graded and saved" in output, output
    deadline = time.monotonic() + 10
    while (_processes_with("sleep 987654") or _session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with("sleep 987654"), "the stuck submission's program outlived the grader"
    assert not _session_members(proc.pid), "grading processes outlived the grader"
    assert finished(out) == ["a_ref0", "a_ref1", "a_ref2"]

    write_notebook(stuck, reference)  # fixed: the next run grades it, and only it
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 submission(s) already graded" in again.stdout + again.stderr
    scores = {name: json.loads((out / name / "results.json").read_text())["score"] for name in finished(out)}
    assert scores == {"a_ref0": 10, "a_ref1": 10, "a_ref2": 10, "z_stuck": 10}


def test_a_cancelled_process_pool_stops_its_program_in_flight(toy_layout, toy_assignment, tmp_path):
    """The GPU executor (fresh worker processes) abandons its work the same way, run here on a CPU."""
    import threading

    from autograder.grade.bundle import load_bundle
    from autograder.grade.executors import GraderSpec, ProcessExecutor
    from autograder.grade.limits import with_overrides

    bundle_dir = toy_layout.bundles / toy_assignment.id
    limits = with_overrides(load_bundle(bundle_dir).limits, test_timeout_s=300)
    stuck = write_notebook(tmp_path / "stuck.ipynb", with_cell_source(reference_submission(toy_assignment), "softmax",
                                                                      STUCK))
    executor = ProcessExecutor(GraderSpec(bundle_dir, limits=limits, sandbox=available_sandbox()), jobs=1)
    outcome: list = []
    grading = threading.Thread(target=lambda: outcome.append(_first_or_error(executor.grade([stuck]))))
    try:
        grading.start()
        deadline = time.monotonic() + 120
        while not _processes_with("sleep 987654") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_with("sleep 987654"), "the stuck submission never started"
        cancelled = time.monotonic()
        executor.cancel()
        grading.join(timeout=30)
        executor.close()
        took = time.monotonic() - cancelled
    finally:
        executor.close()
    assert not grading.is_alive() and took < 20, f"cancel took {took:.1f} s"
    assert outcome and isinstance(outcome[0], BaseException), outcome  # abandoned: no result for it
    deadline = time.monotonic() + 10
    while _processes_with("sleep 987654") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with("sleep 987654"), "the program in flight outlived the cancelled pool"


def _first_or_error(results):
    try:
        return next(iter(results))
    except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
        return exc


def test_a_ctrl_c_while_a_result_is_saved_takes_effect_once_it_is_saved_whole():
    from autograder.cli import interrupts_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            steps.append("results.json")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here: it must only take note
            steps.append("gradebook")
        steps.append("next submission")
    assert steps == ["results.json", "gradebook"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works as before afterwards
