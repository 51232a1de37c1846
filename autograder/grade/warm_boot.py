"""Starting a warm worker: its sandboxed process and its first request, without torch.

A warm worker takes seconds to boot: Python, torch and transformer_lens
imports, then the leading setup cells and the section's model. It needs
nothing from the trusted side but the support files and those cells. So a
batch's grader starts it first, before importing torch itself, and sends the
cells at once: the worker runs them as soon as its own imports are done. The
two start-ups then run side by side on two cores instead of one after the
other. :class:`~.pool.WarmWorker` takes the started process over.

This module imports nothing that needs torch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from autograder.grade.bundle import Bundle
from autograder.grade.framing import send_message
from autograder.grade.limits import Limits
from autograder.grade.sandbox import (
    SANDBOX_HOME, TMPFS_BYTES, WARM_SUPPORT, ProcessCap, Sandbox, scrubbed_environment, with_package_path,
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
PREPARE_CELL_ID = "prepare-public-checks"


def warm_cells(bundle: Bundle, device: str) -> list[tuple[str, str]]:
    """The cells a warm worker runs once for all submissions: the release's leading setup cells.

    None on a GPU: setup cells may put a model there, and a process that has
    touched CUDA cannot fork a child that uses it. There the warm worker only
    imports, and every submission runs all of its cells itself.
    """
    return [] if device.startswith("cuda") else bundle.leading_setup_cells()


class WarmBoot:
    """A warm worker's process, started, with its boot request (the cells) already sent.

    The reply to request :attr:`REQUEST_ID` says the boot is over:
    :meth:`.pool.WarmWorker.ready` waits for it. (A :class:`~.student.StudentConnection`
    numbers its own requests from 2, so the ids never meet.)
    """

    REQUEST_ID = 1

    def __init__(self, support: Path, cells: list[tuple[str, str]], limits: Limits, profile: str, device: str,
                 sandbox: Sandbox, log_path: Path):
        self.support, self.cells, self.limits, self.device = support, list(cells), limits, device
        self.sock, theirs = socket.socketpair()
        self.log = open(log_path, "wb")
        self.log_path = log_path
        inner = [
            sys.executable, "-m", "autograder.grade.worker", "--fd", str(theirs.fileno()), "--device", device,
            "--warm", "--home", SANDBOX_HOME, "--support", WARM_SUPPORT, "--tmpfs-bytes", str(TMPFS_BYTES),
        ]
        self.cap = ProcessCap(limits.max_processes)
        try:
            self.proc = subprocess.Popen(
                sandbox.warm_command(inner, support),
                cwd=support,
                env=with_package_path(scrubbed_environment(Path(SANDBOX_HOME), [Path(SANDBOX_HOME)], profile, device)),
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                pass_fds=[theirs.fileno()],
                preexec_fn=self.cap.join,
                start_new_session=True,
            )
        except BaseException:
            self.cap.remove()
            self.sock.close()
            self.log.close()
            raise
        finally:
            theirs.close()
        boot = list(self.cells)
        if not device.startswith("cuda"):  # the warm worker never touches the GPU (fork)
            # Last, and only an optimisation: it may fail (the checks then load what they need).
            boot.append((PREPARE_CELL_ID, PREPARE_PUBLIC_CHECKS))
        # A few kilobytes of source: the socket's buffer holds them until the worker reads them.
        send_message(self.sock, {"op": "exec_cells", "id": self.REQUEST_ID,
                                 "cells": [{"id": cid, "source": src} for cid, src in boot]}, [])

    @classmethod
    def for_bundle(cls, bundle: Bundle, limits: Limits, profile: str, device: str, sandbox: Sandbox) -> "WarmBoot":
        """Boot a warm worker for ``bundle`` in a fresh copy of its support files (``support``; remove its parent)."""
        support = bundle.staged_support_dir()
        return cls(support, warm_cells(bundle, device), limits, profile, device, sandbox,
                   support.parent / "warm_worker.log")

    def close(self) -> None:
        """Stop the process and everything it started."""
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self.cap.remove()
        self.sock.close()
        self.log.close()
