"""lean_fork: the libraries' at-fork hooks are skipped only where no other thread exists."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from autograder.grade import lean_fork

# Run in a fresh interpreter: the test process may have threads of its own (and then forks the safe way).
PROBE = textwrap.dedent('''
    import json, os, random, sys, threading, time
    from autograder.grade import lean_fork

    hook_ran = []
    os.register_at_fork(after_in_child=lambda: hook_ran.append(1))  # as logging, filelock, ... register theirs

    def fork_and_report():
        """Fork; the child writes what it saw to a pipe and exits."""
        r, w = os.pipe()
        before = random.getstate()
        pid = lean_fork.fork()
        if pid == 0:
            import torch
            seen = {
                "hook_ran": len(hook_ran),
                "reseeded": random.getstate() != before,
                "torch_works": float(torch.ones(3).sum()),
                "pid_is_new": os.getpid() != parent,
            }
            os.write(w, json.dumps(seen).encode())
            os._exit(7)
        os.close(w)
        seen = json.loads(os.read(r, 4096))
        _, status = os.waitpid(pid, 0)
        seen["exit_code"] = os.waitstatus_to_exitcode(status)
        return seen

    parent = os.getpid()
    import torch  # registers its own hook, and must work in the child
    random.seed = lambda *args: 1 / 0  # student code may replace it: the child still reseeds, as after os.fork
    report = {"single": fork_and_report()}
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    report["threaded"] = fork_and_report()
    print(json.dumps(report))
''')


def run_probe() -> dict:
    # OMP_NUM_THREADS=1 as in the sandbox (sandbox.scrubbed_environment): otherwise importing torch starts
    # an OpenMP thread, and the probe would (rightly) fork the safe way both times.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(lean_fork._LIBC_FORK is None, reason="not CPython on Linux: lean_fork is os.fork here")
def test_a_single_threaded_process_forks_without_the_hooks_and_a_threaded_one_with_them():
    report = run_probe()
    single, threaded = report["single"], report["threaded"]
    # One thread: the libraries' hooks are skipped, the child still works as after os.fork.
    assert single == {"hook_ran": 0, "reseeded": True, "torch_works": 3.0, "pid_is_new": True, "exit_code": 7}
    # Another thread alive: os.fork, whose hooks re-create the locks that thread may hold.
    assert threaded == {"hook_ran": 1, "reseeded": True, "torch_works": 3.0, "pid_is_new": True, "exit_code": 7}


def test_a_failed_fork_raises_what_os_fork_would(monkeypatch):
    """EAGAIN (the process cap reached) must stay a BlockingIOError: worker._fork_with_retry waits on it."""

    def failing_fork() -> int:
        ctypes.set_errno(errno.EAGAIN)
        return -1

    monkeypatch.setattr(lean_fork, "_LIBC_FORK", failing_fork)
    monkeypatch.setattr(lean_fork, "single_threaded", lambda: True)
    with pytest.raises(BlockingIOError):
        lean_fork.fork()


def test_a_thread_started_by_c_code_counts_too():
    """The kernel's count, not threading's: a thread Python does not know of can hold a lock as well."""
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(30,), daemon=True)
    thread.start()
    try:
        threading._active.pop(thread.ident)  # hide it from threading, as a C library's thread would be
        assert threading.active_count() == len(threading.enumerate())
        assert not lean_fork.single_threaded()
    finally:
        threading._active[thread.ident] = thread
        stop.set()
        thread.join()
