"""Where the student process runs: inside bubblewrap, or (explicitly) bare.

The bubblewrap view of the filesystem holds only what running Python needs,
read-only (the system's /usr, the Python installation, the autograder package),
plus a private writable home with the assignment's support files and a private
/tmp. The bundle (hidden tests, reference), the gradebook, the course source and
other submissions are simply not there. There is no network but loopback, and
the process gets its own PID namespace, so it cannot signal the grader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import autograder
from autograder.assets.cache import assets_cache_dir
from autograder.grade.numerics import environment_for

SANDBOX_HOME = "/home/student"
WARM_SUPPORT = "/opt/autograder/support"  # a warm worker's read-only copy of the support files
# Where a sandboxed student sees the asset cache (read-only): the grading images keep theirs there too.
ASSETS_MOUNT = "/opt/assets"
TMPFS_BYTES = 256 * 1024 * 1024
NO_SANDBOX_NOTE = "graded WITHOUT a sandbox (--no-sandbox): student code could read and change files on the grading machine"


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here; the message says how to fix it."""


@dataclass(frozen=True)
class Sandbox:
    """How to wrap the worker command. ``kind`` is ``"bwrap"`` or ``"none"``."""

    kind: str = "bwrap"

    def command(self, inner: list[str], home: Path) -> tuple[list[str], Path]:
        """The command to start and the path the worker sees as its home."""
        if self.kind == "none":
            return inner, home
        return bwrap_command(inner, home), Path(SANDBOX_HOME)

    def assets_dir(self) -> str:
        """The asset cache as the student process sees it (``AUTOGRADER_ASSETS`` inside)."""
        return str(assets_cache_dir()) if self.kind == "none" else ASSETS_MOUNT

    def warm_command(self, inner: list[str], support: Path) -> list[str]:
        """A warm worker's sandbox: ``support`` read-only as its home and at WARM_SUPPORT.

        It keeps CAP_SYS_ADMIN and CAP_SETPCAP (in its own user namespace) so
        that each submission it spawns can mount a fresh home and /tmp and then
        drop every capability (see :mod:`.isolation`); it runs no student code.
        """
        if self.kind != "bwrap":
            raise ValueError("warm workers need the bubblewrap sandbox")
        return bwrap_command(inner, support, warm=True)

    @property
    def isolated(self) -> bool:  # bwrap and docker both isolate
        return self.kind != "none"


def scrubbed_environment(
    workdir: Path, python_path: list[Path], profile: str, device: str, assets: str = ASSETS_MOUNT
) -> dict[str, str]:
    """The whole environment the student process sees: nothing inherited by accident.

    ``assets`` is the asset cache as the student sees it (read-only; see
    :func:`.sandbox.bwrap_command`), so the full profile's models load offline.
    """
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(str(p) for p in python_path),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AUTOGRADER_PROFILE": profile,
        "AUTOGRADER_DEVICE": device,
        "AUTOGRADER_ASSETS": assets,
        **environment_for(device),
    }


def with_package_path(env: dict[str, str]) -> dict[str, str]:
    # The worker module itself must be importable even when the grader runs from
    # a source checkout rather than an installed package.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), package_root] if p)
    return env


def python_roots() -> list[Path]:
    """Directories the interpreter and its packages live in."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(Path(path))
    roots.add(Path(sys.executable).resolve().parent.parent)
    # Drop paths nested inside another root.
    ordered = sorted(roots, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def bwrap_command(inner: list[str], home: Path, warm: bool = False) -> list[str]:
    cmd = [
        _bwrap_binary(),
        "--unshare-all",  # no network but lo, own PID/IPC/UTS/user namespaces
        # Run by root, bwrap would otherwise leave the student every capability in
        # its user namespace: enough to remount /usr (or the autograder package)
        # read-write and write to the host as root.
        "--cap-drop", "ALL",
        *(["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP"] if warm else []),
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",  # RAM-backed: capped
        "--dir", "/home",
    ]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        target = Path(link)
        if target.is_symlink():
            cmd += ["--symlink", str(target.readlink()), link]
        elif target.exists():
            cmd += ["--ro-bind", link, link]
    for path in ("/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/localtime"):
        cmd += ["--ro-bind-try", path, path]
    for root in python_roots() + [Path(autograder.__file__).resolve().parent]:
        if not str(root).startswith("/usr/"):
            cmd += ["--ro-bind", str(root), str(root)]
    # The full profile's models: the student's notebook loads them from the cache, read-only.
    assets = assets_cache_dir()
    if assets.is_dir():
        cmd += ["--ro-bind", str(assets.resolve()), ASSETS_MOUNT]
    if warm:
        cmd += ["--ro-bind", str(home), SANDBOX_HOME, "--ro-bind", str(home), WARM_SUPPORT]
    else:
        cmd += ["--bind", str(home), SANDBOX_HOME]
    return cmd + ["--chdir", SANDBOX_HOME] + inner


def _bwrap_binary() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. "
            "Install it (Debian/Ubuntu: `apt-get install bubblewrap`), or grade with "
            "--no-sandbox on a machine you trust (this is recorded in every result)."
        )
    return path


# What a probe runs in the sandbox. "full" imports torch (a second or more): it proves that student
# programs can start. "quick" only starts Python and finds torch: enough to refuse at once where
# bubblewrap cannot run at all, before a batch starts its workers (whose warm worker then proves the
# rest, and falls back on the full probe if it cannot start; see Grader.disable_warm).
PROBES = {
    "full": "import torch",
    "quick": "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)",
}


@lru_cache(maxsize=2)
def check_bwrap(probe: str = "full") -> None:
    """Raise :class:`SandboxUnavailable` unless this Python starts inside a bubblewrap sandbox here."""
    with tempfile.TemporaryDirectory() as home:
        run = subprocess.run(
            bwrap_command([sys.executable, "-c", PROBES[probe]], Path(home)),
            capture_output=True, text=True, timeout=120,
        )
    if run.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap is installed but cannot start a sandbox here ({run.stderr.strip()[-300:] or 'no torch inside'}). "
            "It needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root. "
            "Fix that, or grade with --no-sandbox on a machine you trust (recorded in every result)."
        )


def make_sandbox(kind: str, probe: str = "full") -> Sandbox:
    """``bwrap`` (default), ``docker`` (a container per submission) or ``none``; refuses what cannot run here.

    ``probe`` is how bubblewrap is checked (see PROBES), or ``"none"`` for a process whose parent has
    just checked it on this machine.
    """
    if kind == "bwrap":
        if probe != "none":
            check_bwrap(probe)
    elif kind == "docker":
        from autograder.grade.docker_backend import docker_client

        docker_client()
    elif kind != "none":
        raise ValueError(f"unknown sandbox {kind!r}")
    return Sandbox(kind)


class ProcessCap:
    """A pids cgroup capping how many processes a submission may have at once.

    RLIMIT_NPROC does not bind root, and graders often run as root in
    containers, so fork bombs are stopped by the kernel's pids controller where
    one is writable (cgroup v1 ``pids`` or v2). Where none is, RLIMIT_NPROC is
    the fallback (effective for non-root graders).
    """

    def __init__(self, max_processes: int):
        self.path: Path | None = None
        for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
                if base.name != "pids" and "pids" not in (base / "cgroup.controllers").read_text(errors="ignore"):
                    continue
                try:
                    path = Path(tempfile.mkdtemp(prefix="autograder-", dir=base))
                    (path / "pids.max").write_text(str(max_processes))
                except OSError:
                    continue
                self.path = path
                break

    @property
    def active(self) -> bool:
        return self.path is not None

    def join(self) -> None:
        """Move the calling process (a child between fork and exec) into the cgroup."""
        self.adopt(os.getpid())

    def adopt(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup; what it forks from then on counts here."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            for attempt in range(60):
                try:
                    self.path.rmdir()
                    break
                except OSError:  # busy until the killed processes have exited
                    time.sleep(min(0.02, 0.001 * 2**attempt))
        except OSError:
            pass
        self.path = None
