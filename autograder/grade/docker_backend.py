"""The Docker backend: each submission's program runs in its own container.

``autograder grade --backend docker`` starts, per submission, a container of
the grading image with no network, a non-root user, a read-only root
filesystem, tmpfs home and /tmp, memory/pids/ulimit caps, every capability
dropped and no-new-privileges; GPUs are requested (``device_requests``) when
grading on CUDA. The container sees only the assignment's support files
(read-only) and one Unix socket back to the grader: the trusted side (hidden
tests, reference, bundle, gradebook) stays in the grader process, and the
wire protocol is the same as with bubblewrap.

``mount_host_python`` mounts this machine's Python installation and the
autograder package read-only into the container instead of relying on the
image's own: for development, and for the test suite, whose image is a tiny
``docker import``-ed root filesystem (no registry is reachable there).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import autograder
from autograder.grade.sandbox import (
    ASSETS_MOUNT, SANDBOX_HOME, TMPFS_BYTES, WARM_SUPPORT, SandboxUnavailable, python_roots, scrubbed_environment,
)
from autograder.grade.student import (
    Limits,
    StudentConnection,
    StudentCrashed,
    _Program,
    peer_pid,
)

from autograder.grade.docker_settings import DockerSettings  # noqa: F401 - where callers have long found it

WIRE_DIR = "/run/autograder"
NOBODY = "65534:65534"


def docker_client():
    """A client for the engine named by DOCKER_HOST (or the default socket), or a clear refusal."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise SandboxUnavailable("the docker backend needs the docker SDK: pip install docker") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine
        raise SandboxUnavailable(
            f"no Docker engine answers at {os.environ.get('DOCKER_HOST', 'the default socket')} ({exc}). "
            "Start dockerd (or set DOCKER_HOST), or grade with the default bubblewrap backend."
        ) from exc
    return client


def container_options(settings: DockerSettings, limits: Limits, device: str, support: Path, wire_dir: Path,
                      profile: str) -> dict:
    """Keyword arguments for ``client.containers.run``: the whole isolation policy, as data."""
    from docker.types import DeviceRequest, Ulimit

    mb = 1024 * 1024
    python = sys.executable if settings.mount_host_python else settings.python
    volumes = {
        str(support): {"bind": WARM_SUPPORT, "mode": "ro"},
        str(wire_dir): {"bind": WIRE_DIR, "mode": "rw"},
    }
    if settings.mount_host_python:
        for root in [*python_roots(), Path(autograder.__file__).resolve().parent]:
            if not str(root).startswith("/usr/"):
                volumes[str(root)] = {"bind": str(root), "mode": "ro"}
        volumes["/usr"] = {"bind": "/usr", "mode": "ro"}
    if settings.assets is not None:
        volumes[str(Path(settings.assets).resolve())] = {"bind": ASSETS_MOUNT, "mode": "ro"}
    env = scrubbed_environment(Path(SANDBOX_HOME), [Path(SANDBOX_HOME)], profile, device)
    if settings.mount_host_python:
        package_root = str(Path(autograder.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], package_root])
    options = dict(
        image=settings.image,
        # The grading images' own entrypoint is this worker; naming it here serves any image.
        entrypoint=[python, "-m", "autograder.grade.worker"],
        command=["--connect", f"{WIRE_DIR}/wire.sock", "--device", device, "--copy-support", WARM_SUPPORT],
        user=NOBODY,
        network_mode="none",
        read_only=True,
        tmpfs={SANDBOX_HOME: f"size={TMPFS_BYTES},mode=1777", "/tmp": f"size={TMPFS_BYTES},mode=1777"},
        working_dir=SANDBOX_HOME,
        environment=env,
        volumes=volumes,
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",
        pids_limit=limits.max_processes,
        ulimits=[
            Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds),
            Ulimit(name="fsize", soft=limits.file_size_mb * mb, hard=limits.file_size_mb * mb),
            Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
            Ulimit(name="core", soft=0, hard=0),
        ],
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        init=False,
        detach=True,
        log_config={"type": "json-file", "config": {"max-size": f"{limits.file_size_mb}m"}},
        labels={"autograder": "student"},
    )
    if device.startswith("cuda"):
        options["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


class DockerProgram(_Program):
    """A submission's program in its own container, reached through a Unix socket."""

    def __init__(self, client, settings: DockerSettings, support: Path, limits: Limits, profile: str, device: str):
        self.limits, self.device = limits, device
        self._tmp = Path(tempfile.mkdtemp(prefix="autograder-docker-"))
        self._tmp.chmod(0o711)
        wire_dir = self._tmp / "wire"
        wire_dir.mkdir()
        wire_dir.chmod(0o777)  # the container's user must be able to connect
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(wire_dir / "wire.sock"))
        os.chmod(wire_dir / "wire.sock", 0o777)
        listener.listen(1)
        self.container = client.containers.run(**container_options(settings, limits, device, support, wire_dir, profile))
        try:
            sock = self._accept(listener, time.monotonic() + limits.startup_timeout_s)
        except StudentCrashed:
            self.close()
            raise
        finally:
            listener.close()
        self._sock = sock
        self.conn = StudentConnection(sock, peer_pid(sock.fileno()), limits, device)
        self._final_logs = ""

    def _accept(self, listener: socket.socket, deadline: float) -> socket.socket:
        """The container's connection; a container that exits or never connects is reported with its output."""
        listener.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                return listener.accept()[0]
            except socket.timeout:
                self.container.reload()
                if self.container.status in ("exited", "dead"):
                    break
        raise StudentCrashed(f"the grading container did not start: {self._logs()[-1000:]}".strip())

    def _logs(self) -> str:
        try:
            return self.container.logs(tail=200).decode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001 - the container may be gone
            return ""

    def where_stuck(self, pid: int) -> str:
        return ""  # the output is the container's log, not a file here to read the stack back from

    def output_tail(self, max_bytes: int = 4000) -> str:
        text = self._final_logs or self._logs()
        return text[-max_bytes:]

    def close(self) -> None:
        self._final_logs = self._logs()
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)
