"""``os.fork`` without the at-fork hooks of imported libraries, where that is safe.

Grading forks the student's program once per test case, and each fork is on the
critical path. ``os.fork`` runs every hook that an imported package registered with
``os.register_at_fork``. With torch and transformer_lens imported those are
logging's (one lock re-created per handler, 45 of them), threading's, filelock's,
huggingface_hub's, fsspec's, random's and torch's own. They are a few milliseconds
of Python, but the code they run touches objects all over the inherited heap. Each
write to a 2 MiB page shared with the parent splits it into 512 small pages
(:func:`.worker.collapse_into_huge_pages`). That makes every later fork copy, and
every exit tear down, that many more page-table entries.

Measured on 1.1's programs (2 cores): a test case's fork went from 18 ms to 14 ms
as the grader waits for it, and the per-submission overhead from 1.22× to 1.18×
the time inside the tests.

The hooks exist for processes with other threads: a lock held by a thread that
the fork leaves behind would stay locked forever in the child. With one thread,
no other thread can hold a lock. Python's own after-fork steps, which re-create
the GIL and the import and runtime locks and drop other threads' states, then
leave everything as it was. So :func:`fork` takes the lean path only when the
process has exactly one thread, on CPython, through the C library's ``fork``
called with the GIL held (``ctypes.PyDLL``). Otherwise it calls ``os.fork``. In
the child it still does the two hooks whose effect a test could see: torch's
(which initialises OpenMP again, pytorch#28389) and random's reseed.
"""

from __future__ import annotations

import ctypes
import os
import random
import sys


def _libc_fork():
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
        return None
    try:
        fork = ctypes.PyDLL(None, use_errno=True).fork  # PyDLL: the GIL stays held across the call
    except (OSError, AttributeError):
        return None
    fork.restype = ctypes.c_int
    fork.argtypes = []
    return fork


_LIBC_FORK = _libc_fork()
# Looked up now, before any student code runs, as random's own hook was: a program that replaces
# random.seed does not change what runs after a fork.
_RESEED = random.seed


def single_threaded() -> bool:
    """This process has one thread (the kernel's count, so threads started by C code count too)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: assume the worst
        return False


def fork() -> int:
    """Like ``os.fork``: 0 in the child, the child's PID in the parent; ``OSError`` on failure."""
    if _LIBC_FORK is None or not single_threaded():
        return os.fork()
    pid = _LIBC_FORK()
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))  # EAGAIN comes out as BlockingIOError, as from os.fork
    if pid == 0:
        _after_fork_in_child()
    return pid


def _after_fork_in_child() -> None:
    # As os.fork does with its hooks: a failing one is not the fork's failure.
    try:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch._C.get_num_threads()  # torch's hook: torch.get_num_threads is this function
        _RESEED()
    except Exception:  # noqa: BLE001
        pass
