"""The bubblewrap sandbox: what student code can and cannot see or reach."""

from __future__ import annotations

import os

import pytest

from autograder.grade import sandbox as sandbox_module
from autograder.grade.sandbox import Sandbox, SandboxUnavailable, check_bwrap
from autograder.grade.student import Limits, StudentNamespace, StudentProcess

try:
    check_bwrap()
    BWRAP_REASON = ""
except SandboxUnavailable as exc:  # pragma: no cover - CI installs bubblewrap
    BWRAP_REASON = str(exc)

needs_bwrap = pytest.mark.skipif(bool(BWRAP_REASON), reason=f"SKIPPED LOUDLY: {BWRAP_REASON}")

PROBES = '''
import os, socket

def exists(path):
    return os.path.exists(path)

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        return type(exc).__name__

def env_keys():
    return sorted(os.environ)

def kill(pid):
    try:
        os.kill(pid, 9)
        return "killed"
    except OSError as exc:
        return type(exc).__name__

def write(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__

def cwd():
    return os.getcwd()

def capabilities():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs")}

def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__

def collector_on():
    import gc
    return gc.isenabled()
'''


@pytest.fixture
def probe(tmp_path):
    os.environ["AUTOGRADER_TEST_SECRET"] = "hunter2"
    proc = StudentProcess(tmp_path, Limits(test_timeout_s=20), sandbox=Sandbox("bwrap"))
    try:
        assert proc.exec_cells([("probes", PROBES)])[0]["ok"]
        conn = proc.fork()
        yield StudentNamespace(conn), proc
        conn.close()
    finally:
        proc.close()
        os.environ.pop("AUTOGRADER_TEST_SECRET", None)


@needs_bwrap
def test_grader_files_are_not_in_view(probe, tmp_path):
    student, _ = probe
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    secret = tmp_path / "gradebook.sqlite"
    secret.write_text("grades")
    for path in [f"{repo}/source", f"{repo}/build", f"{repo}/release", f"{repo}/tests", str(secret), str(tmp_path)]:
        assert student.exists(path) is False, path
    # Only the Python installation and the (public) autograder package are mounted from the repo.
    assert set(student.listdir(repo)) <= {"autograder", ".venv"}
    assert student.cwd() == "/home/student"


@needs_bwrap
def test_no_network(probe):
    student, _ = probe
    assert student.connect("1.1.1.1", 80) in {"OSError", "ConnectionRefusedError", "TimeoutError"}
    assert student.resolve("pypi.org") in {"gaierror", "OSError"}


@needs_bwrap
def test_environment_is_scrubbed(probe):
    student, _ = probe
    keys = student.env_keys()
    assert "AUTOGRADER_TEST_SECRET" not in keys
    assert set(keys) <= {
        "PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
        "AUTOGRADER_PROFILE", "AUTOGRADER_DEVICE", "AUTOGRADER_ASSETS", "PWD",  # PWD: set by bwrap --chdir
    }


@needs_bwrap
def test_no_capabilities_inside(probe):
    """With capabilities in its user namespace, code could remount /usr read-write."""
    student, _ = probe
    zero = "0" * 16
    assert student.capabilities() == {"CapEff": zero, "CapPrm": zero, "CapBnd": zero, "NoNewPrivs": "1"}


@needs_bwrap
def test_student_code_runs_with_the_garbage_collector_on(probe):
    """The worker imports torch with Python's collector off (start-up time); the cells must not inherit that."""
    student, _ = probe
    assert student.collector_on() is True


@needs_bwrap
def test_cannot_signal_the_grader_and_root_is_read_only(probe):
    student, _ = probe
    assert student.kill(os.getpid()) == "ProcessLookupError"  # not in its PID namespace
    assert student.write("/usr/evil") in {"OSError", "PermissionError"}
    assert student.write("/home/student/scratch.txt") == "written"


def test_missing_bwrap_refuses_with_the_fix(monkeypatch):
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    sandbox_module.check_bwrap.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable) as err:
            sandbox_module.make_sandbox("bwrap")
    finally:
        sandbox_module.check_bwrap.cache_clear()
    assert "apt-get install bubblewrap" in str(err.value) and "--no-sandbox" in str(err.value)


def test_no_sandbox_is_recorded_in_results(toy_layout, toy_assignment, tmp_path):
    from autograder.build.samples import reference_submission
    from autograder.grade.bundle import load_bundle
    from autograder.grade.runner import Grader
    from conftest import write_notebook

    grader = Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox="none")
    result = grader.grade_path(write_notebook(tmp_path / "r.ipynb", reference_submission(toy_assignment)))
    assert result.score == 10
    data = result.to_gradescope()
    assert data["extra_data"]["sandbox"] == "none" and "WITHOUT a sandbox" in data["output"]
