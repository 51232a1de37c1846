"""The CPU grading image, built for real by ``grading_images/build_cpu_image.sh`` and graded with.

No registry is reachable here: the script debootstraps a Debian base from Debian's mirror, collects
a wheelhouse of the lock, and builds with ``--network none``. This module starts a private dockerd
(overlay2 where the kernel allows it, else vfs) whose data root is in the script's cache
($AUTOGRADER_IMAGE_CACHE), so that a second run reuses the base, the wheelhouse and Docker's layer
cache; a first run takes minutes (grading_images/README.md has the measured times).

It then grades section 1.1's sample submissions in the image, network off, and checks that every
score equals the local (bubblewrap) backend's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autograder.grade.docker_backend import DockerProgram, DockerSettings, docker_client
from autograder.grade.student import Limits, StudentNamespace
from conftest import REPO, available_sandbox, run_at_once
from dockerd import start_fastest_private_dockerd

pytestmark = pytest.mark.slow

SCRIPT = REPO / "grading_images" / "build_cpu_image.sh"
TAG = "autograder-grader:cpu"
CACHE = Path(os.environ.get("AUTOGRADER_IMAGE_CACHE") or Path.home() / ".cache" / "autograder" / "image-build")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Uncompressed, as `docker image inspect` counts it; measured 2.05 GB (README). A budget, so the image stays small.
SIZE_BUDGET_BYTES = 2_500_000_000
COMPILERS = ["gcc", "cc", "c++", "g++", "clang", "make"]


def _mirror_reachable() -> str:
    """'' where debootstrap can reach Debian's mirror (or needs not: the base is cached), else why not."""
    if any(CACHE.glob("rootfs-bookworm-*.tar")):
        return ""
    try:
        urllib.request.urlopen(f"{MIRROR}/dists/bookworm/Release", timeout=15).close()
        return ""
    except OSError as exc:
        return f"Debian's mirror {MIRROR} is unreachable for debootstrap ({exc}); set DEBIAN_MIRROR"


@pytest.fixture(scope="module")
def engine():
    unreachable = _mirror_reachable()
    if unreachable:
        pytest.skip(f"SKIPPED LOUDLY: cannot build the grading image: {unreachable}")
    dockerd, why = start_fastest_private_dockerd(CACHE)
    if dockerd is None:
        pytest.skip(f"SKIPPED LOUDLY: no Docker engine can be started here: {why}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = dockerd.host
    try:
        yield dockerd
    finally:
        dockerd.stop()
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="module")
def image(engine) -> dict:
    """The script run end to end: the image's tag, size and the script's wall time."""
    started = time.monotonic()
    result = subprocess.run(["nice", "-n", "10", str(SCRIPT), TAG], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": sys.executable})
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"build_cpu_image.sh failed:\n{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
    size = re.search(rf"^image {re.escape(TAG)}: \d+ MB \((\d+) bytes\)$", result.stdout, re.M)
    assert size, f"no size line in the script's output: {result.stdout[-500:]}"
    return {"tag": TAG, "bytes": int(size.group(1)), "seconds": seconds}


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)


def test_image_is_small_non_root_without_build_tools(image, record_property):
    record_property("image_bytes", image["bytes"])  # in CI's junit XML
    record_property("build_seconds", round(image["seconds"], 1))
    print(f"\n{image['tag']}: {image['bytes'] / 1e6:.0f} MB, script ran {image['seconds']:.0f} s")
    assert image["bytes"] < SIZE_BUDGET_BYTES, f"{image['tag']} grew to {image['bytes'] / 1e6:.0f} MB"

    config = json.loads(_docker("image", "inspect", image["tag"]).stdout)[0]["Config"]
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "autograder.grade.worker"]
    assert "HF_HUB_OFFLINE=1" in config["Env"]

    # Looked at as root (root can see /root); the image itself runs as 65534.
    probe = "; ".join([
        "id -u",
        *[f"command -v {c} && echo COMPILER {c}" for c in COMPILERS],
        "for d in /root/.cache/pip /home/student/.cache/pip /wheels /src; do [ -e $d ] && echo LEFT $d; done",
        "/opt/venv/bin/python -c 'import torch, autograder; print(\"TORCH\", torch.__version__)'",
        "true",
    ])
    as_root = _docker("run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh", image["tag"], "-c", probe)
    assert as_root.returncode == 0, as_root.stderr
    assert "COMPILER" not in as_root.stdout, f"build tools in the final image: {as_root.stdout}"
    assert "LEFT" not in as_root.stdout, f"pip cache, wheelhouse or sources left in the final image: {as_root.stdout}"
    assert "TORCH 2.13.0+cpu" in as_root.stdout
    as_default = _docker("run", "--rm", "--network", "none", "--entrypoint", "id", image["tag"], "-u")
    assert as_default.stdout.strip() == "65534"


PROBES = '''
import os, socket, sys

def facts():
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2).close()
        network = "connected"
    except OSError as exc:
        network = type(exc).__name__
    import torch
    return {"uid": os.getuid(), "network": network, "interfaces": sorted(os.listdir("/sys/class/net")),
            "python": sys.executable, "torch": torch.__version__}
'''


def test_backend_runs_the_image_network_off(image, tmp_path):
    """The docker backend's own container: the image's interpreter, not root, no network."""
    support = tmp_path / "support"
    support.mkdir()
    program = DockerProgram(docker_client(), DockerSettings(image=image["tag"]), support, Limits(test_timeout_s=60),
                            "lite", "cpu")
    try:
        assert program.exec_cells([("probes", PROBES)])[0]["ok"], program.output_tail()
        conn = program.fork()
        facts = StudentNamespace(conn).facts()
        conn.close()
        assert facts["uid"] == 65534
        assert facts["network"] != "connected" and facts["interfaces"] == ["lo"]
        assert facts["python"].startswith("/opt/venv/"), facts["python"]
        assert facts["torch"] == "2.13.0+cpu"
    finally:
        program.close()


def _grade_at_once(submissions: Path, runs: dict[Path, list[str]]) -> dict[Path, dict[str, dict]]:
    """`autograder grade 1.1` as a user runs it, once per output folder with its backend's options, all at the
    same time (each grades on one core); each submission's total, per-exercise and per-test scores."""
    run_at_once([["nice", "-n", "10", sys.executable, "-m", "autograder", "grade", "1.1", str(submissions), "--out",
                  str(out), "--db", str(out.with_suffix(".sqlite")), *backend] for out, backend in runs.items()],
                cwd=REPO, timeout=1200)
    return {out: _scores(out) for out in runs}


def _scores(out: Path) -> dict[str, dict]:
    scores = {}
    for path in sorted(out.glob("*/results.json")):
        data = json.loads(path.read_text())
        scores[path.parent.name] = {
            "total": data["score"],
            "exercises": {name: e["score"] for name, e in data["extra_data"]["exercises"].items()},
            "tests": [(t["name"], t["score"], t["status"]) for t in data["tests"]],
            "sandbox": data["extra_data"]["sandbox"],
        }
    return scores


def test_samples_grade_the_same_in_the_image(image, tmp_path):
    samples = tmp_path / "samples"
    made = subprocess.run([sys.executable, "-m", "autograder", "samples", "1.1", "--out", str(samples)],
                          cwd=REPO, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    local_backend = available_sandbox()
    graded = _grade_at_once(samples, {
        tmp_path / "docker": ["--backend", "docker", "--docker-image", image["tag"]],
        tmp_path / "local": ["--no-sandbox"] if local_backend == "none" else [],
    })
    in_image, local = graded[tmp_path / "docker"], graded[tmp_path / "local"]

    assert sorted(in_image) == sorted(local) == ["blank", "partial", "reference"]
    assert {n: s["sandbox"] for n, s in in_image.items()} == dict.fromkeys(in_image, "docker")
    assert {n: s["sandbox"] for n, s in local.items()} == dict.fromkeys(local, local_backend)
    for name in local:
        assert in_image[name]["total"] == local[name]["total"], name
        assert in_image[name]["exercises"] == local[name]["exercises"], name
        assert in_image[name]["tests"] == local[name]["tests"], name
    # The samples span the range, so equal scores are not equal by accident (all zero, all full).
    assert local["reference"]["total"] == 100 and local["blank"]["total"] == 0
    assert 0 < local["partial"]["total"] < 100
