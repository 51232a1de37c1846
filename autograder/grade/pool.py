"""Warm workers: pay Python, torch and model start-up once per batch, not per submission.

A :class:`WarmWorker` holds one sandboxed worker process (started by
:class:`~.warm_boot.WarmBoot`) that has run the assignment's *leading* setup
cells (the trusted imports and model loads that come before the first answer
cell). From then on it spawns one program per submission from that warm state
(``fork``), each in fresh namespaces: a new home and /tmp, its own PID
namespace, no capabilities (see :mod:`.isolation`). A spawned program then
behaves exactly like a cold-started one: the remaining cells run in it, and
each test case gets a fork of it.

Where a warm worker cannot boot or cannot isolate submissions (bubblewrap
without user namespaces that allow mounts), :class:`WarmWorkerUnavailable`
says why and the grader falls back to a cold start per submission.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict
from pathlib import Path

from autograder.grade import wire
from autograder.grade.student import Limits, SpawnedProgram, StudentConnection, StudentCrashed
from autograder.grade.warm_boot import WarmBoot


class WarmWorkerUnavailable(RuntimeError):
    """A warm worker could not start, or cannot isolate submissions here."""


class WarmWorker:
    def __init__(self, boot: WarmBoot, wait: bool = True):
        self.limits, self.device = boot.limits, boot.device
        self._boot = boot
        self._proc, self._sock = boot.proc, boot.sock
        self._conn = StudentConnection(boot.sock, boot.proc.pid, boot.limits, boot.device)
        self._owner = os.getpid()
        self._spawn_lock = None
        self.leading_results: list[dict] | None = None
        if wait:
            self.ready()

    def ready(self) -> "WarmWorker":
        """Wait until the boot (the leading cells, sent as the process started) is over.

        Safe to call from a thread: it only talks over the worker's socket, so the
        caller can compute the hidden tests' fixtures meanwhile.
        """
        if self.leading_results is not None:
            return self
        try:
            results = self._conn.await_reply(WarmBoot.REQUEST_ID, timeout=self.limits.startup_timeout_s)
        except Exception as exc:
            self.close()
            raise WarmWorkerUnavailable(f"the warm worker did not start: {exc}") from exc
        # What follows the leading cells prepared the public checks: an optimisation, whatever came of it.
        self.leading_results = results[: len(self._boot.cells)]
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
        self._boot.close()
