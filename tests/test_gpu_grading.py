"""Grading on GPUs: slot packing, memory caps, out-of-memory per exercise, and CPU/GPU parity.

Most of it runs on any machine: the packing is plain arithmetic, and the
program-per-case mode that CUDA needs (it does not survive fork) is exercised
on the CPU. The parity test grades every section's reference and
alternative-correct variants on the CPU and on the GPU, and runs wherever a
GPU is present.
"""

from __future__ import annotations

import os

import pytest
import torch

from autograder.build.samples import blank_submission, partial_submission, reference_submission, with_cell_source
from autograder.grade.bundle import load_bundle
from autograder.grade.gpu_slots import (
    MEMORY_FRACTION_VAR,
    GpuPlanError,
    GpuSlot,
    cap_this_process,
    parse_gpus,
    plan_gpu_slots,
)
from autograder.grade.numerics import environment_for
from autograder.grade.runner import Grader
from conftest import REPO, available_sandbox, write_notebook


# --------------------------------------------------------------------------- packing


def test_workers_per_gpu_defaults_to_what_the_memory_estimate_lets_fit():
    slots = plan_gpu_slots([0, 1], memory_estimate_mb=1500, gpu_memory_mb=16000)
    assert len(slots) == 2 * 9  # floor(0.9 * 16000 / 1500) = 9 per GPU
    assert [s.gpu for s in slots[:4]] == [0, 1, 0, 1]  # the first workers spread over both GPUs
    assert slots[0].process_memory_fraction == pytest.approx(0.9 / 9 / 2)


def test_an_explicit_k_is_kept_and_too_many_workers_are_refused_with_the_limit_named():
    slots = plan_gpu_slots([3], memory_estimate_mb=2000, gpu_memory_mb=80000, workers_per_gpu=4)
    assert [s.gpu for s in slots] == [3, 3, 3, 3]
    assert slots[0].process_memory_fraction == pytest.approx(0.1125)
    with pytest.raises(GpuPlanError, match=r"at most 7 fit \(--workers-per-gpu 7\)"):
        plan_gpu_slots([0], memory_estimate_mb=2000, gpu_memory_mb=16000, workers_per_gpu=8)
    with pytest.raises(GpuPlanError, match="more than 90% of this GPU"):
        plan_gpu_slots([0], memory_estimate_mb=20000, gpu_memory_mb=16000)
    with pytest.raises(GpuPlanError, match="at least 1"):
        plan_gpu_slots([0], memory_estimate_mb=100, gpu_memory_mb=16000, workers_per_gpu=0)


@pytest.mark.parametrize("text", ["", "a", "0,0", "-1", "0;1"])
def test_bad_gpu_lists_are_refused(text):
    with pytest.raises(GpuPlanError, match="--gpus"):
        parse_gpus(text)


def test_a_slot_reaches_the_students_process_only_on_a_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv(MEMORY_FRACTION_VAR, "0.05")
    assert environment_for("cuda")["CUDA_VISIBLE_DEVICES"] == "1"
    assert environment_for("cuda")[MEMORY_FRACTION_VAR] == "0.05"
    assert environment_for("cpu") == {}
    assert GpuSlot(2, 0.1).environment() == {"CUDA_VISIBLE_DEVICES": "2", MEMORY_FRACTION_VAR: "0.100000"}


def test_without_a_slot_or_a_gpu_nothing_is_capped(monkeypatch):
    monkeypatch.delenv(MEMORY_FRACTION_VAR, raising=False)
    assert cap_this_process() is None
    if not torch.cuda.is_available():
        monkeypatch.setenv(MEMORY_FRACTION_VAR, "0.1")
        assert cap_this_process() is None  # and CUDA was not touched


def test_cli_refuses_an_impossible_packing_before_starting_anything(toy_layout, capsys):
    from autograder.cli import main

    code = main(["--root", str(toy_layout.root), "grade", "0.1", str(toy_layout.root), "--out", "/tmp/never",
                 "--gpus", "0", "--workers-per-gpu", "50", "--gpu-memory-mb", "8000",
                 "--db", str(toy_layout.root / "book.sqlite")])
    assert code == 2
    assert "at most" in capsys.readouterr().err


# --------------------------------------------------------------------------- a fresh program per case


@pytest.fixture(scope="module")
def per_case_grader(toy_layout, toy_assignment):
    """The mode grading uses on a GPU, where a forked child could not use CUDA."""
    grader = Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox=available_sandbox(),
                    fresh_program_per_case=True)
    yield grader
    grader.close()


def test_a_program_per_case_grades_like_a_fork_per_case(per_case_grader, toy_grader, toy_assignment, tmp_path):
    assert not toy_grader.fresh_program_per_case and per_case_grader.fresh_program_per_case
    naive = "def softmax(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n"
    submissions = {
        "reference": reference_submission(toy_assignment),
        "blank": blank_submission(toy_assignment),
        "partial": partial_submission(toy_assignment),
        "naive": with_cell_source(reference_submission(toy_assignment), "softmax", naive),
    }
    for name, nb in submissions.items():
        path = write_notebook(tmp_path / f"{name}.ipynb", nb)
        forked, fresh = toy_grader.grade_path(path), per_case_grader.grade_path(path)
        assert [(e.name, e.score) for e in fresh.exercises] == [(e.name, e.score) for e in forked.exercises], name
        assert [t.reason for e in fresh.exercises for t in e.tests] == [t.reason for e in forked.exercises for t in e.tests]


def test_a_program_per_case_keeps_cases_apart(per_case_grader, toy_assignment, tmp_path):
    """What one case leaves in the program (here: a call counter) must not reach the next case."""
    stateful = (
        "CALLS = []\n"
        "def softmax(x):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) > 1:\n"
        "        raise RuntimeError('state from an earlier test case leaked into this one')\n"
        "    shifted = x - x.max(dim=-1, keepdim=True).values\n"
        "    return shifted.softmax(dim=-1)\n"
    )
    nb = with_cell_source(reference_submission(toy_assignment), "softmax", stateful)
    result = per_case_grader.grade_path(write_notebook(tmp_path / "stateful.ipynb", nb))
    softmax = result.exercise("softmax")
    assert len(softmax.tests) == 2 and softmax.score == 4, [t.output for t in softmax.tests if not t.passed]


def test_out_of_gpu_memory_fails_only_that_exercise_and_says_so(toy_grader, toy_assignment, tmp_path):
    oom = (
        "import torch\n"
        "def softmax(x):\n"
        "    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
    )
    nb = with_cell_source(reference_submission(toy_assignment), "softmax", oom)
    result = toy_grader.grade_path(write_notebook(tmp_path / "oom.ipynb", nb))
    assert {e.name: e.score for e in result.exercises} == {"softmax": 0, "scale": 3, "double_scale": 3}
    message = result.exercise("softmax").tests[0].output
    assert "ran out of GPU memory in this test" in message and "Only this test is affected" in message


def test_the_graders_own_oom_is_not_blamed_on_the_student():
    from autograder.grade.runner import explain_failure

    reason, message = explain_failure(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert reason == "error" and "not a fault in your code" in message


# --------------------------------------------------------------------------- CPU/GPU parity


def _sections():
    from autograder.authoring.assignment import discover_assignments

    return discover_assignments(REPO / "source")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CPU/GPU parity needs a CUDA GPU; none here (it runs wherever one is present)")
@pytest.mark.parametrize("assignment", _sections(), ids=lambda a: a.id)
def test_reference_and_alternatives_score_the_same_on_cpu_and_gpu(assignment, tmp_path):
    from autograder.build import ensure_bundle
    from autograder.grade.executors import GraderSpec, make_executor
    from autograder.layout import CourseLayout
    from sections import apply_variant, load_variants, write

    layout = CourseLayout(REPO)
    ensure_bundle(layout, assignment)
    paths = [write(reference_submission(assignment), tmp_path / "reference.ipynb")]
    for i, variant in enumerate(v for v in load_variants(assignment) if v.kind == "alternative"):
        paths.append(write(apply_variant(assignment, variant), tmp_path / f"alternative_{i:03d}.ipynb"))
    scores = {}
    for device in ("cpu", "cuda"):
        spec = GraderSpec(layout.bundles / assignment.id, device=device, sandbox=available_sandbox())
        executor = make_executor(spec)
        try:
            scores[device] = {r.submission: {e.name: e.score for e in r.exercises} for r in executor.grade(paths)}
        finally:
            executor.close()
    assert scores["cuda"] == scores["cpu"]
    full = sum(e.points for e in assignment.exercises)
    assert all(sum(s.values()) == pytest.approx(full) for s in scores["cuda"].values())


def test_on_a_gpu_host_memory_is_capped_by_the_data_segment_not_the_address_space():
    """CUDA reserves far more address space than it uses: an address-space cap would stop it starting."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, resource\n"
        "from autograder.grade.student import Limits\n"
        "Limits(memory_mb=2048).apply()\n"
        "print(json.dumps([resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_DATA)[0]]))\n"
    )
    limits = {}
    for device in ("cpu", "cuda"):
        env = {**os.environ, "AUTOGRADER_DEVICE": device}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
        limits[device] = json.loads(out)
    two_gb = 2048 * 1024 * 1024
    assert limits["cpu"][0] == two_gb and limits["cuda"][1] == two_gb
    assert limits["cuda"][0] != two_gb  # the address space is left to CUDA
