"""Repeatable GPU numerics: the flags are set for CUDA grading, and only there.

No GPU is needed: the flags are process state that torch accepts without one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autograder.grade.numerics import CUBLAS_WORKSPACE, make_repeatable
from autograder.grade.sandbox import scrubbed_environment


@pytest.fixture
def restore_torch_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.use_deterministic_algorithms(saved[0])
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved[1:]


def test_cuda_grading_is_deterministic_and_tf32_free(restore_torch_flags):
    import os

    torch.backends.cuda.matmul.allow_tf32 = True
    make_repeatable("cuda")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE


def test_cpu_grading_leaves_torch_alone(restore_torch_flags):
    torch.use_deterministic_algorithms(False)
    make_repeatable("cpu")
    assert not torch.are_deterministic_algorithms_enabled()


def test_student_process_starts_with_the_cublas_workspace_on_cuda_only():
    assert scrubbed_environment(Path("/h"), [], "lite", "cuda:0")["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert "CUBLAS_WORKSPACE_CONFIG" not in scrubbed_environment(Path("/h"), [], "lite", "cpu")
