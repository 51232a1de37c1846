"""The Docker backend, against a real Docker engine this suite starts itself.

No registry is reachable here, so the image is a tiny root filesystem made with
``docker import``; the interpreter and packages are mounted read-only from this
machine (``mount_host_python``). What is tested is the backend's isolation and
its grades, which must equal bubblewrap's.
"""

from __future__ import annotations

from dataclasses import replace

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from autograder.build.samples import blank_submission, reference_submission, with_cell_source
from autograder.grade.bundle import load_bundle
from autograder.grade.docker_backend import DockerProgram, DockerSettings, container_options, docker_client
from autograder.grade.runner import Grader
from autograder.grade.sandbox import SandboxUnavailable
from autograder.grade.student import Limits, StudentNamespace
from conftest import write_notebook
from test_attacks import ATTACKS, shorten_time_limit

IMAGE = "autograder-test-rootfs:latest"


def _rootfs_tar() -> bytes:
    """/etc/passwd and group (root, nobody) and the mount points the backend uses."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ["etc", "tmp", "home", "home/student", "run", "run/autograder", "opt", "opt/autograder",
                  "opt/autograder/support", "proc", "dev", "sys"]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d in ("tmp", "home/student") else 0o755
            tar.addfile(info)
        for link in ("bin", "lib", "lib64", "sbin"):  # merged-/usr layout, as on Debian
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
        for name, text in {
            "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _start_private_dockerd() -> tuple[subprocess.Popen | None, str, Path | None]:
    """A dockerd with its own data, exec and socket paths; (None, why) where it cannot start."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return None, "dockerd is not installed (Debian: apt-get install docker.io)", None
    if os.geteuid() != 0:
        return None, "starting dockerd needs root here", None
    root = Path(tempfile.mkdtemp(prefix="agd-", dir="/tmp"))  # short: Unix socket paths are limited
    host = f"unix://{root}/docker.sock"
    log = open(root / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [dockerd, "--iptables=false", "--bridge=none", "--storage-driver", "vfs", "--data-root", str(root / "data"),
         "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"), "-H", host],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    os.environ["DOCKER_HOST"] = host
    for _ in range(120):
        try:
            docker_client()
            return proc, "", root
        except SandboxUnavailable:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    return None, f"dockerd did not start: {(root / 'dockerd.log').read_text()[-500:]}", None


@pytest.fixture(scope="module")
def engine():
    previous = os.environ.get("DOCKER_HOST")
    started = None
    try:
        client = docker_client()
    except SandboxUnavailable:
        started, why, root = _start_private_dockerd()
        if started is None:
            pytest.skip(f"SKIPPED LOUDLY: no Docker engine can be started here: {why}")
        client = docker_client()
    client.api.import_image_from_data(_rootfs_tar(), repository=IMAGE.split(":")[0], tag="latest")
    yield client
    if started is not None:
        started.send_signal(signal.SIGTERM)
        started.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous


SETTINGS = DockerSettings(image=IMAGE, mount_host_python=True)

PROBES = '''
import os, socket

def uid():
    return os.getuid()

def connect():
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def write(path):
    try:
        open(path, "w").write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__

def exists(path):
    return os.path.exists(path)

def capabilities():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("CapEff", "NoNewPrivs")}

def interfaces():
    return sorted(os.listdir("/sys/class/net"))

def support():
    return open("support.txt").read()
'''


def test_container_isolation(engine, tmp_path):
    support = tmp_path / "support"
    support.mkdir()
    (support / "support.txt").write_text("released")
    program = DockerProgram(engine, SETTINGS, support, Limits(test_timeout_s=20), "lite", "cpu")
    try:
        assert program.exec_cells([("probes", PROBES)])[0]["ok"]
        conn = program.fork()
        student = StudentNamespace(conn)
        assert student.uid() == 65534  # not root
        assert student.connect() in {"OSError", "ConnectionRefusedError", "TimeoutError"}
        assert student.interfaces() == ["lo"]  # network_mode=none
        assert student.write("/etc/evil") in {"OSError", "PermissionError"}  # read-only root
        assert student.write("/usr/evil") in {"OSError", "PermissionError"}
        assert student.write("/home/student/scratch") == "written"  # tmpfs home
        assert student.support() == "released"
        repo = Path(__file__).resolve().parents[1]
        assert not student.exists(str(repo / "source")) and not student.exists(str(repo / "tests"))
        assert student.capabilities() == {"CapEff": "0" * 16, "NoNewPrivs": "1"}
        conn.close()
        attrs = engine.api.inspect_container(program.container.id)["HostConfig"]
        assert attrs["NetworkMode"] == "none" and attrs["ReadonlyRootfs"] is True
        assert attrs["PidsLimit"] == Limits().max_processes and attrs["Memory"] == Limits().memory_mb * 1024**2
    finally:
        program.close()
    assert not engine.containers.list(all=True, filters={"label": "autograder=student"}), "container left behind"


def test_gpu_is_requested_only_on_cuda(tmp_path):
    pytest.importorskip("docker")
    cpu = container_options(SETTINGS, Limits(), "cpu", tmp_path, tmp_path, "lite")
    gpu = container_options(SETTINGS, Limits(), "cuda", tmp_path, tmp_path, "lite")
    assert "device_requests" not in cpu
    assert gpu["device_requests"][0]["Capabilities"] == [["gpu"]]


def test_an_asset_cache_is_mounted_read_only_where_the_image_keeps_its_own(tmp_path):
    """The full profile's models can come from the host's cache; the student sees them read-only
    at /opt/assets, the path the grading images bake theirs into and AUTOGRADER_ASSETS names."""
    pytest.importorskip("docker")
    plain = container_options(SETTINGS, Limits(), "cpu", tmp_path, tmp_path, "full")
    assert "/opt/assets" not in [v["bind"] for v in plain["volumes"].values()]
    assert plain["environment"]["AUTOGRADER_ASSETS"] == "/opt/assets"
    cache = tmp_path / "assets"
    cache.mkdir()
    mounted = container_options(replace(SETTINGS, assets=cache), Limits(), "cpu", tmp_path, tmp_path, "full")
    assert mounted["volumes"][str(cache.resolve())] == {"bind": "/opt/assets", "mode": "ro"}


@pytest.fixture(scope="module")
def docker_grader(engine, toy_layout, toy_assignment):
    with Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox="docker", docker=SETTINGS) as grader:
        yield grader


def test_docker_grades_like_bubblewrap(docker_grader, toy_grader, toy_assignment, tmp_path):
    reference = reference_submission(toy_assignment)
    for name, nb, score in [
        ("reference", reference, 10),
        ("blank", blank_submission(toy_assignment), 0),
        ("bug", with_cell_source(reference, "softmax", "def softmax(x):\n    return x.exp() / x.exp().sum()\n"), 6),
    ]:
        path = write_notebook(tmp_path / f"{name}.ipynb", nb)
        in_docker, in_bwrap = docker_grader.grade_path(path), toy_grader.grade_path(path)
        assert in_docker.score == in_bwrap.score == score, name
        assert [(t.name, t.score) for e in in_docker.exercises for t in e.tests] == \
               [(t.name, t.score) for e in in_bwrap.exercises for t in e.tests]
        assert in_docker.sandbox == "docker"


DOCKER_ATTACKS = [a for a in ATTACKS if a.name in {
    "fork bomb", "kill the parent", "read hidden tests and reference", "open a socket", "os._exit(0)",
    "patch autograder.checks", "remount the system read-write",
}]


@pytest.mark.slow
@pytest.mark.parametrize("attack", DOCKER_ATTACKS, ids=lambda a: a.name)
def test_attack_in_docker(attack, docker_grader, toy_assignment, tmp_path, monkeypatch):
    shorten_time_limit(attack, docker_grader, monkeypatch)
    nb = with_cell_source(reference_submission(toy_assignment), "softmax", attack.code)
    result = docker_grader.grade_path(write_notebook(tmp_path / "attack.ipynb", nb))
    assert {e.name: e.score for e in result.exercises} == attack.expect
    after = docker_grader.grade_path(write_notebook(tmp_path / "next.ipynb", reference_submission(toy_assignment)))
    assert after.score == 10
