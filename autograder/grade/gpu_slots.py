"""Several grading workers on one GPU: who gets which GPU, and how much of its memory.

``autograder grade --gpus 0,1 --workers-per-gpu K`` starts K workers per GPU.
Each worker sees only its own GPU (``CUDA_VISIBLE_DEVICES``) and is capped at
its share of that GPU's memory, split between its two processes: the trusted
grader (reference, hidden tests) and the student's program. A worker that
runs past its cap gets an out-of-memory error in the one test that did it;
the other workers and exercises carry on.

K comes from the assignment's ``memory_estimate_mb`` (``assignment.toml``)
when not given: as many workers as fit in 90% of the GPU's memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

# Left to the CUDA context, the allocator's fragmentation, and anything else on the GPU.
USABLE_SHARE = 0.9
# Environment a worker's processes read: the cap of each process, as a fraction of the GPU.
MEMORY_FRACTION_VAR = "AUTOGRADER_GPU_MEMORY_FRACTION"


class GpuPlanError(ValueError):
    """The requested packing cannot work; the message says what would."""


@dataclass(frozen=True)
class GpuSlot:
    gpu: int  # the physical index, as nvidia-smi numbers it
    process_memory_fraction: float  # of that GPU, for each of the worker's two processes

    def environment(self) -> dict[str, str]:
        """What a worker process starts with, before anything touches CUDA."""
        return {"CUDA_VISIBLE_DEVICES": str(self.gpu), MEMORY_FRACTION_VAR: f"{self.process_memory_fraction:.6f}"}


def parse_gpus(text: str) -> list[int]:
    """``"0,1"`` → ``[0, 1]``, refusing what is not a list of distinct GPU indices."""
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GpuPlanError(f"--gpus takes GPU indices separated by commas, such as 0,1 (got {text!r})") from None
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise GpuPlanError(f"--gpus takes distinct non-negative GPU indices, such as 0,1 (got {text!r})")
    return gpus


def workers_that_fit(memory_estimate_mb: float, gpu_memory_mb: float) -> int:
    return math.floor(gpu_memory_mb * USABLE_SHARE / memory_estimate_mb)


def plan_gpu_slots(
    gpus: list[int], memory_estimate_mb: float, gpu_memory_mb: float, workers_per_gpu: int | None = None
) -> list[GpuSlot]:
    """One slot per worker, GPUs filled in turn so that the first jobs spread over every GPU."""
    if memory_estimate_mb <= 0 or gpu_memory_mb <= 0:
        raise GpuPlanError("memory_estimate_mb and the GPU's memory must be positive")
    fit = workers_that_fit(memory_estimate_mb, gpu_memory_mb)
    if fit < 1:
        raise GpuPlanError(
            f"one grading worker needs about {memory_estimate_mb:g} MB (memory_estimate_mb in assignment.toml), "
            f"more than {USABLE_SHARE:.0%} of this GPU's {gpu_memory_mb:g} MB; grade on a larger GPU or on the CPU"
        )
    k = fit if workers_per_gpu is None else workers_per_gpu
    if k < 1:
        raise GpuPlanError(f"--workers-per-gpu must be at least 1 (got {k})")
    if k > fit:
        raise GpuPlanError(
            f"{k} workers per GPU need about {k * memory_estimate_mb:g} MB ({k} x memory_estimate_mb "
            f"{memory_estimate_mb:g} MB), more than {USABLE_SHARE:.0%} of the GPU's {gpu_memory_mb:g} MB; "
            f"at most {fit} fit (--workers-per-gpu {fit})"
        )
    # Each worker's share of the usable memory, halved between its grader and its student process.
    fraction = round(USABLE_SHARE / k / 2, 6)
    return [GpuSlot(gpu, fraction) for _ in range(k) for gpu in gpus]


def gpu_memory_mb(gpu: int, fallback_mb: float) -> float:
    """The GPU's total memory as ``nvidia-smi`` reports it, else ``fallback_mb`` (``--gpu-memory-mb``).

    Asked of nvidia-smi rather than torch, so that this process never starts CUDA.
    """
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return fallback_mb
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={gpu}", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        return float(out.strip().splitlines()[0])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return fallback_mb


def cap_this_process() -> float | None:
    """Apply this process's GPU memory cap, if its worker was given one; returns the cap (a fraction).

    Call it where the process first uses CUDA: it initialises CUDA, which must
    never happen in a process that will fork.
    """
    value = os.environ.get(MEMORY_FRACTION_VAR)
    if not value:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    fraction = float(value)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    return fraction
