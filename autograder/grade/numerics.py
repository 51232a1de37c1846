"""Repeatable numerics on GPU: the same code, inputs and device give the same numbers.

Grading compares a student's result with the reference's, computed in the same
run on the same device. On CUDA that is only meaningful when neither side picks
a nondeterministic kernel or silently drops to TF32 precision, so both the
grader and the student's process call :func:`make_repeatable` before any CUDA
work.
"""

from __future__ import annotations

import os

# cuBLAS needs a fixed workspace to be deterministic; it must be set before CUDA starts.
CUBLAS_WORKSPACE = ":4096:8"


def environment_for(device: str) -> dict[str, str]:
    """Variables a process must start with to compute repeatably on ``device``.

    On a GPU the student's process also inherits its worker's GPU slot (which
    GPU it sees, and its memory cap; see :mod:`autograder.grade.gpu_slots`).
    """
    if not device.startswith("cuda"):
        return {}
    slot = {k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "AUTOGRADER_GPU_MEMORY_FRACTION") if k in os.environ}
    return {"CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE, **slot}


def make_repeatable(device: str) -> None:
    """Deterministic algorithms and full float32 precision for checked computations on ``device``."""
    if not device.startswith("cuda"):
        return
    import torch  # here, not at the top: environment_for serves processes that start before torch loads

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 rounds float32 matmuls to 10 mantissa bits
    torch.backends.cudnn.allow_tf32 = False
