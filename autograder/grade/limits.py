"""How much a student's program may use: memory, CPU, files, processes, time.

Kept apart from :mod:`.student` (which needs torch) so that the command line,
the assignment reader and the batch executor's parent process can read and
override limits without importing torch: in a batch the parent only hands out
work, and its start-up delays every worker's.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Resource limits for the student process (POSIX rlimits + wall clock)."""

    memory_mb: int = 6144
    cpu_seconds: int = 600
    file_size_mb: int = 64
    open_files: int = 256
    max_processes: int = 64
    test_timeout_s: float = 30.0
    startup_timeout_s: float = 60.0
    max_message_mb: int = 1024

    def apply(self) -> None:
        """Called in the child between fork and exec."""
        mb = 1024 * 1024
        _setrlimit(memory_rlimit(os.environ.get("AUTOGRADER_DEVICE", "cpu")), self.memory_mb * mb)
        _setrlimit(resource.RLIMIT_CPU, self.cpu_seconds)
        _setrlimit(resource.RLIMIT_FSIZE, self.file_size_mb * mb)
        _setrlimit(resource.RLIMIT_NOFILE, self.open_files)
        _setrlimit(resource.RLIMIT_CORE, 0)
        if os.getuid() != 0:  # root ignores it; the pids cgroup covers that case
            _setrlimit(resource.RLIMIT_NPROC, self.max_processes)


def memory_rlimit(device: str) -> int:
    """The limit that caps the student's host memory on ``device``.

    The address space on a CPU. CUDA reserves far more address space than it
    ever uses, so on a GPU the data segment (private writable memory) is
    capped instead; GPU memory has its own cap (gpu_slots).
    """
    return resource.RLIMIT_DATA if device.startswith("cuda") else resource.RLIMIT_AS


def _setrlimit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))


def with_overrides(limits: Limits, **overrides: Any) -> Limits:
    """``limits`` with each override that is not None (command-line flags) put in."""
    return replace(limits, **{k: v for k, v in overrides.items() if v is not None})
