"""A private Docker engine for tests: Debian's dockerd with its own data, exec and socket paths.

No engine runs on the test machines and no registry is reachable, so a test that needs Docker
starts one of these (root only), sets DOCKER_HOST to it, and stops it when done. Networking is
off in the daemon itself (no iptables, no bridge); containers get ``network_mode=none`` anyway.
The storage driver is vfs by default: it works everywhere (no overlayfs needed), at the price
of a full copy of the image per layer and per container, which is fine for tiny images. For real
images (gigabytes), ask for ``overlay2`` and fall back to vfs where the kernel refuses it:
:func:`start_fastest_private_dockerd`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PrivateDockerd:
    process: subprocess.Popen
    host: str  # for DOCKER_HOST: unix://<run dir>/docker.sock
    run_dir: Path  # socket, exec root, pid file and log: removed on stop
    data_root: Path  # images and build cache: removed on stop unless the caller gave it (a cache)
    keep_data: bool

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        # dockerd's containerd may still be writing its sockets for a moment after dockerd exits.
        for _ in range(20):
            shutil.rmtree(self.run_dir, ignore_errors=True)
            if not self.run_dir.exists():
                break
            time.sleep(0.5)
        if not self.keep_data:
            shutil.rmtree(self.data_root, ignore_errors=True)


def start_private_dockerd(data_root: Path | None = None, storage_driver: str = "vfs",
                          timeout_s: float = 60) -> tuple[PrivateDockerd | None, str]:
    """A running private dockerd, or (None, why it cannot start here).

    ``data_root``: where images live; give a cache folder to keep images between runs (it is
    kept on stop), or None for a scratch one (removed on stop).
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return None, "dockerd is not installed (Debian: apt-get install docker.io)"
    if shutil.which("docker") is None:
        return None, "the docker CLI is not installed (Debian: apt-get install docker.io)"
    if os.geteuid() != 0:
        return None, "starting dockerd needs root here"
    run_dir = Path(tempfile.mkdtemp(prefix="agd-", dir="/tmp"))  # short: Unix socket paths are limited
    keep = data_root is not None
    data = Path(data_root) if keep else run_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    host = f"unix://{run_dir}/docker.sock"
    log_path = run_dir / "dockerd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [dockerd, "--iptables=false", "--bridge=none", "--storage-driver", storage_driver, "--data-root", str(data),
             "--exec-root", str(run_dir / "exec"), "--pidfile", str(run_dir / "docker.pid"), "-H", host],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    engine = PrivateDockerd(process, host, run_dir, data, keep)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if (run_dir / "docker.sock").exists() and _answers(host):
            return engine, ""
        time.sleep(0.5)
    why = log_path.read_text(errors="replace")[-800:]
    engine.stop()
    return None, f"dockerd did not start within {timeout_s:.0f} s: {why}"


def start_fastest_private_dockerd(cache: Path) -> tuple[PrivateDockerd | None, str]:
    """overlay2 where the kernel allows it (layers and containers cost nothing), else vfs; the data root
    is ``cache/dockerd-<driver>`` and kept, so images and build cache survive to the next run."""
    why = ""
    for driver in ("overlay2", "vfs"):
        engine, why = start_private_dockerd(cache / f"dockerd-{driver}", storage_driver=driver)
        if engine is not None:
            return engine, ""
    return None, why


def _answers(host: str) -> bool:
    result = subprocess.run(["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, timeout=30)
    return result.returncode == 0
