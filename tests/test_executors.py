"""Parallel and cluster executors grade a real batch exactly as the serial grader does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import text

from autograder.build.samples import blank_submission, reference_submission, with_cell_source
from autograder.cli import main as cli
from autograder.gradebook import open_gradebook
from autograder.grade.executors import ForkedExecutor, GraderSpec, WorkerFailed, gpu_fraction, make_executor
from conftest import available_sandbox, write_notebook

BUGS = {
    "no_dim": "def softmax(x):\n    return x.exp() / x.exp().sum()\n",
    "identity": "def softmax(x):\n    return x\n",
    "crash": "import os\nos._exit(1)\n",
}


@pytest.fixture(scope="module")
def batch(toy_assignment, tmp_path_factory):
    """Ten submissions of the toy assignment: references, blanks and bugs."""
    folder = tmp_path_factory.mktemp("batch")
    reference = reference_submission(toy_assignment)
    for i in range(3):
        write_notebook(folder / f"ref{i}.ipynb", reference)
        write_notebook(folder / f"blank{i}.ipynb", blank_submission(toy_assignment))
    for name, code in BUGS.items():
        write_notebook(folder / f"{name}.ipynb", with_cell_source(reference, "softmax", code))
    (folder / "garbage.ipynb").write_text("{ not a notebook")
    return folder


def grade(toy_layout, batch, out, *extra):
    args = ["--root", str(toy_layout.root), "grade", "0.1", str(batch), "--out", str(out),
            "--db", str(out / "book.sqlite"), *extra]
    if available_sandbox() == "none":
        args.append("--no-sandbox")
    assert cli(args) == 0
    results = {}
    for path in sorted(out.glob("*/results.json")):
        data = json.loads(path.read_text())
        results[path.parent.name] = (data["score"], [(t["name"], t["score"], t["status"]) for t in data["tests"]])
    with open_gradebook(str(out / "book.sqlite")).connect() as db:
        rows = db.execute(text("select submission, count(*) from submissions group by submission")).all()
    assert all(count == 1 for _, count in rows), rows
    assert {name for name, _ in rows} == set(results)
    return results


@pytest.fixture(scope="module")
def serial_out(tmp_path_factory):
    return tmp_path_factory.mktemp("serial")


@pytest.fixture(scope="module")
def serial(toy_layout, batch, serial_out):
    return grade(toy_layout, batch, serial_out)


def test_serial_batch_scores(serial):
    assert len(serial) == 10
    assert [serial[f"ref{i}"][0] for i in range(3)] == [10, 10, 10]
    assert [serial[f"blank{i}"][0] for i in range(3)] == [0, 0, 0]
    assert serial["no_dim"][0] == serial["identity"][0] == 6
    assert serial["crash"][0] == serial["garbage"][0] == 0


def test_results_json_hides_the_reference_values_the_gradebook_keeps(serial, serial_out):
    """results.json is in the format Gradescope shows students: like feedback.html, it must not quote the
    reference's values. The gradebook, which only instructors read, keeps the checks' messages whole."""
    with open_gradebook(str(serial_out / "book.sqlite")).connect() as db:
        whole = db.execute(text("select t.output from test_results t join submissions s on s.id = t.submission_id "
                                "where s.submission = 'no_dim' and t.status = 'failed'")).scalars().all()
    quoted = {m.group(1) for output in whole for m in re.finditer(r"expected (-?[0-9][0-9.e+-]*)", output)}
    assert quoted, whole  # the checks do quote the reference (an instructor debugging a test needs it)
    shown = [t["output"] for t in json.loads((serial_out / "no_dim" / "results.json").read_text())["tests"]
             if t["status"] == "failed"]
    assert len(shown) == len(whole) and all("expected (hidden)" in output for output in shown), shown
    assert not any(f"expected {value}" in output for value in quoted for output in shown), shown


@pytest.mark.slow
def test_parallel_workers_grade_like_serial(toy_layout, batch, serial, tmp_path):
    assert grade(toy_layout, batch, tmp_path / "out", "--jobs", "2") == serial


def _children(parent: int) -> dict[int, list[bytes]]:
    """pid -> argv of the processes whose parent is ``parent`` now (those that exit meanwhile are left out)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found[int(pid)] = argv
    return found


def _warm_worker_sandboxes(started_by: int) -> set[int]:
    """The bubblewrap sandboxes of warm workers that process ``started_by`` runs now."""
    return {pid for pid, argv in _children(started_by).items() if argv[0].endswith(b"bwrap") and b"--warm" in argv}


@pytest.mark.slow
def test_forked_workers_share_one_warm_worker_and_grade_like_serial(toy_layout, batch, serial):
    """Workers forked from one warmed-up template (the CPU default for --jobs N) spawn from its one warm worker."""
    if available_sandbox() != "bwrap":
        pytest.skip("SKIPPED LOUDLY: warm workers need bubblewrap")
    executor = make_executor(GraderSpec(toy_layout.bundles / "0.1_toy"), jobs=2)
    assert isinstance(executor, ForkedExecutor)
    scores, sandboxes = {}, []
    try:
        for result in executor.grade(sorted(batch.glob("*.ipynb"))):
            scores[result.submission] = result.score
            sandboxes.append(_warm_worker_sandboxes(executor._template.pid))
    finally:
        executor.close()
    assert scores == {name: value[0] for name, value in serial.items()}
    # One warm worker, the template's, for the whole batch: the workers share it.
    assert len(sandboxes[0]) == 1 and all(s == sandboxes[0] for s in sandboxes), sandboxes
    assert not any(os.path.exists(f"/proc/{pid}") for pid in sandboxes[0])  # stopped with the batch


def test_workers_that_cannot_start_say_why(batch, tmp_path):
    executor = ForkedExecutor(GraderSpec(tmp_path / "no-such-bundle"), jobs=2)
    try:
        with pytest.raises(WorkerFailed, match="the grader could not start"):
            list(executor.grade(sorted(batch.glob("*.ipynb"))))
    finally:
        executor.close()


@pytest.mark.slow
def test_a_worker_killed_mid_batch_stops_the_batch_with_what_to_do(toy_layout, batch):
    """The caller hears which submission was lost and that rerunning resumes (the CLI records as it goes)."""
    import signal

    executor = ForkedExecutor(GraderSpec(toy_layout.bundles / "0.1_toy", sandbox=available_sandbox()), jobs=2)
    graded = []
    try:
        with pytest.raises(WorkerFailed, match="stopped while grading .*run the same command again"):
            for result in executor.grade(sorted(batch.glob("*.ipynb")) * 3):
                graded.append(result.submission)
                if len(graded) == 1:
                    template = executor._template.pid
                    children = _children(template)
                    # Its two workers are forks of the template itself (its other child: the warm worker's sandbox).
                    same = open(f"/proc/{template}/cmdline", "rb").read().split(b"\0")
                    workers = [pid for pid, argv in children.items() if argv == same]
                    assert len(workers) == 2, children
                    os.kill(workers[0], signal.SIGKILL)
    finally:
        executor.close()
    assert 1 <= len(graded) < 30


@pytest.mark.slow
def test_a_batch_parent_never_imports_torch(toy_layout, batch, serial, tmp_path):
    """With --jobs N the parent only hands out work: what it imports first delays every worker's start.

    torch is made unimportable in the parent (not in its workers, which are fresh interpreters):
    the batch must still grade exactly like the serial one.
    """
    out = tmp_path / "out"
    args = ["--root", str(toy_layout.root), "grade", "0.1", str(batch), "--out", str(out),
            "--db", str(out / "book.sqlite"), "--jobs", "2"]
    if available_sandbox() == "none":
        args.append("--no-sandbox")
    driver = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of it now raises\n"
        "from autograder.cli import main\n"
        f"raise SystemExit(main({args!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
    assert scores == {name: value[0] for name, value in serial.items()}


@pytest.mark.slow
def test_local_ray_cluster_grades_like_serial(toy_layout, batch, serial, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="SKIPPED LOUDLY: ray is not installed (pip install 'autograder[cluster]')")
    # A busy 2-core CI machine can take longer than Ray's default to register the local node.
    monkeypatch.setenv("RAY_raylet_start_wait_time_s", "120")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    try:
        assert grade(toy_layout, batch, tmp_path / "out", "--executor", "ray", "--jobs", "2") == serial
    finally:
        ray.shutdown()


def test_gpu_fraction_follows_the_memory_estimate():
    assert gpu_fraction(1500, 16000) == 0.09
    assert gpu_fraction(40000, 16000) == 1.0
    assert gpu_fraction(1, 80000) == 0.01
    with pytest.raises(ValueError):
        gpu_fraction(1000, 0)


def test_a_batch_grader_starts_its_warm_worker_before_it_imports_torch(toy_layout):
    """The warm worker's boot (Python, torch, the leading cells) overlaps this process's own imports."""
    probe = f"""
import sys
from pathlib import Path
from autograder.grade import warm_boot
from autograder.grade.executors import GraderSpec

seen = []
original = warm_boot.WarmBoot.__init__
def recording(self, *args, **kwargs):
    seen.append("torch" in sys.modules)
    original(self, *args, **kwargs)
warm_boot.WarmBoot.__init__ = recording
grader = GraderSpec(Path({str(toy_layout.bundles / "0.1_toy")!r}), sandbox="bwrap").make_grader(torch_threads=1)
try:
    grader.warm_up()
    import gc
    print(seen, grader.warm, "torch" in sys.modules, gc.isenabled())
finally:
    grader.close()
"""
    if available_sandbox() != "bwrap":
        pytest.skip("warm workers need bubblewrap")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # ... and the collector, paused while the grader loaded (executors.collector_paused), is back on.
    assert done.stdout.split() == ["[False]", "True", "True", "True"], done.stdout
