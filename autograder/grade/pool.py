"""Warm workers: pay Python, torch and model start-up once per batch, not per submission.

A :class:`WarmWorker` starts one sandboxed worker process, runs the
assignment's *leading* setup cells in it (the trusted imports and model loads
that come before the first answer cell), and from then on spawns one program
per submission from that warm state (``fork``), each in fresh namespaces: a new
home and /tmp, its own PID namespace, no capabilities (see
:mod:`.isolation`). A spawned program then behaves exactly like a cold-started
one: the remaining cells run in it, and each test case gets a fork of it.

Where a warm worker cannot isolate submissions (bubblewrap without user
namespaces that allow mounts), :func:`start_warm_worker` says why and the
grader falls back to a cold start per submission.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from autograder.grade import wire
from autograder.grade.sandbox import SANDBOX_HOME, TMPFS_BYTES, WARM_SUPPORT, ProcessCap, Sandbox
from autograder.grade.student import (
    Limits,
    SpawnedProgram,
    StudentConnection,
    StudentCrashed,
    _with_package_path,
    scrubbed_environment,
)


# Feedback re-runs the section's public checks for the exercises that lost points (runner.py).
# Their shared state (the section's model, loaded once into the module's cache) is prepared here,
# in the warm worker, so that the programs forked from it inherit it instead of each loading it
# (2 s a submission in 1.1). ``public_tests.prepare()`` is optional; it is instructor code.
PREPARE_PUBLIC_CHECKS = (
    "import importlib.util as _ag_util\n"
    "if _ag_util.find_spec('public_tests') is not None:\n"
    "    import public_tests as _ag_public\n"
    "    getattr(_ag_public, 'prepare', lambda: None)()\n"
    "    del _ag_public\n"
    "del _ag_util\n"
)


class WarmWorkerUnavailable(RuntimeError):
    """A warm worker could not start, or cannot isolate submissions here."""


class WarmWorker:
    def __init__(
        self,
        support: Path,
        leading_cells: list[tuple[str, str]],
        limits: Limits,
        profile: str,
        device: str,
        sandbox: Sandbox,
        log_path: Path,
        wait: bool = True,
    ):
        self.limits, self.device = limits, device
        ours, theirs = socket.socketpair()
        self._sock = ours
        self._log = open(log_path, "wb")
        inner = [
            sys.executable, "-m", "autograder.grade.worker", "--fd", str(theirs.fileno()), "--device", device,
            "--warm", "--home", SANDBOX_HOME, "--support", WARM_SUPPORT, "--tmpfs-bytes", str(TMPFS_BYTES),
        ]
        self._cap = ProcessCap(limits.max_processes)
        self._proc = subprocess.Popen(
            sandbox.warm_command(inner, support),
            cwd=support,
            env=_with_package_path(scrubbed_environment(Path(SANDBOX_HOME), [Path(SANDBOX_HOME)], profile, device)),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=[theirs.fileno()],
            preexec_fn=self._cap.join,
            start_new_session=True,
        )
        theirs.close()
        self._conn = StudentConnection(ours, self._proc.pid, limits, device)
        self._leading_cells = leading_cells
        self._owner = os.getpid()
        self._spawn_lock = None
        self.leading_results: list[dict] | None = None
        if wait:
            self.ready()

    def ready(self) -> "WarmWorker":
        """Wait until the leading cells have run (they started with the process).

        Safe to call from a thread: it only talks over the worker's socket, so the
        caller can compute the hidden tests' fixtures meanwhile.
        """
        if self.leading_results is not None:
            return self
        limits = self.limits
        try:
            self.leading_results = self._conn.request(
                {"op": "exec_cells", "cells": [{"id": cid, "source": src} for cid, src in self._leading_cells]},
                timeout=limits.startup_timeout_s,
            )
        except Exception as exc:
            self.close()
            raise WarmWorkerUnavailable(f"the warm worker did not start: {exc}") from exc
        if not self.device.startswith("cuda"):  # the warm worker never touches the GPU (fork)
            try:
                self._conn.request({"op": "exec_cells", "cells": [{"id": "prepare-public-checks",
                                                                   "source": PREPARE_PUBLIC_CHECKS}]},
                                   timeout=limits.startup_timeout_s)
            except Exception:  # noqa: BLE001 - an optimisation: each check loads what it needs anyway
                pass
        return self

    def share(self, lock) -> None:
        """Let the processes this one forks spawn from it too, one spawn at a time under ``lock``.

        Each spawned program goes into a process cap of its own (SpawnedProgram), so
        sharing one warm worker never pools the submissions' process limits.
        """
        self._spawn_lock = lock

    @property
    def alive(self) -> bool:
        if os.getpid() == self._owner:
            return self._proc.poll() is None
        try:  # a sharer is not the worker's parent: it can only look
            with open(f"/proc/{self._proc.pid}/stat", "rb") as stat:
                return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
        except (OSError, IndexError):
            return False

    def spawn(self, limits: Limits, log_path: Path) -> SpawnedProgram:
        """A fresh program for one submission, in the state the leading cells left."""
        if self.leading_results is None:
            self.ready()
        if self._spawn_lock is None:
            return self._spawn(limits, log_path)
        if not self._spawn_lock.acquire(timeout=limits.startup_timeout_s):
            raise StudentCrashed("the shared warm worker stayed busy with another grader's spawn")
        try:
            return self._spawn(limits, log_path)
        finally:
            self._spawn_lock.release()

    def _spawn(self, limits: Limits, log_path: Path) -> SpawnedProgram:
        log = open(log_path, "wb")
        try:
            wire.send_message(self._sock, {"op": "spawn", "id": 0, "limits": asdict(limits)}, [])
            socket.send_fds(self._sock, [b"L"], [log.fileno()])
            self._sock.settimeout(limits.startup_timeout_s)
            data, fds, _flags, _addr = socket.recv_fds(self._sock, 4096, 1)
        except (OSError, socket.timeout) as exc:
            log.close()
            raise StudentCrashed(f"the warm worker stopped answering ({exc})") from exc
        if data != b"SPAWN" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            log.close()
            reason = data.decode(errors="replace").removeprefix("FAIL ").strip() or "it exited"
            raise WarmWorkerUnavailable(f"the warm worker could not isolate a submission: {reason}")
        return SpawnedProgram(socket.socket(fileno=fds[0]), log_path, log, limits, self.device)

    def close(self) -> None:
        if os.getpid() != self._owner:
            return  # shared: the process that started it stops it, once every sharer is done
        try:
            os.killpg(self._proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._cap.remove()
        self._sock.close()
        self._log.close()
