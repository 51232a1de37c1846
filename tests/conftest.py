"""Shared fixtures: a scratch copy of the toy course, and graders built once per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import warnings

import nbformat
import pytest

from autograder.authoring.assignment import find_assignment
from autograder.build import build_course
from autograder.grade.bundle import load_bundle
from autograder.grade.runner import Grader
from autograder.grade.sandbox import SandboxUnavailable, check_bwrap
from autograder.layout import CourseLayout

REPO = Path(__file__).resolve().parents[1]
TOY_COURSE = Path(__file__).parent / "fixtures" / "toy_course"


def pytest_addoption(parser):
    parser.addoption("--all-variants", action="store_true",
                     help="also grade the mutants and alternatives beyond each exercise's required two and one "
                          "(tests/test_sections.py); `make test-all`")


def pytest_collection_modifyitems(config, items):
    """Tests marked extra_variant are deselected, visibly in the summary, unless --all-variants is given."""
    if config.getoption("--all-variants"):
        return
    extra = [item for item in items if item.get_closest_marker("extra_variant")]
    if extra:
        config.hook.pytest_deselected(items=extra)
        items[:] = [item for item in items if not item.get_closest_marker("extra_variant")]


@pytest.fixture(scope="session")
def toy_layout(tmp_path_factory) -> CourseLayout:
    root = tmp_path_factory.mktemp("toy_course")
    shutil.copytree(TOY_COURSE / "source", root / "source")
    layout = CourseLayout(root)
    build_course(layout)
    return layout


@pytest.fixture(scope="session")
def toy_assignment(toy_layout):
    return find_assignment(toy_layout.source, "0.1")


def available_sandbox() -> str:
    """bubblewrap where it runs (CI installs it); otherwise grade bare, and say so loudly."""
    try:
        check_bwrap()
        return "bwrap"
    except SandboxUnavailable as exc:
        warnings.warn(f"grading tests run WITHOUT the bubblewrap sandbox: {exc}", stacklevel=1)
        return "none"


@pytest.fixture(scope="session")
def toy_grader(toy_layout, toy_assignment) -> Grader:
    return Grader(load_bundle(toy_layout.bundles / toy_assignment.id), sandbox=available_sandbox())


@pytest.fixture(scope="session")
def section_batches(tmp_path_factory):
    """Every course section's batch, graded once per test session, for test_sections.py and the section tests."""
    from sections import SectionBatches  # sections imports this module

    return SectionBatches(tmp_path_factory.mktemp("sections"))


def run_at_once(commands: list[list[str]], *, cwd: Path | None = None, env: dict | None = None,
                timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Independent commands, each mostly one busy process, run at the same time; all must succeed.

    ``timeout`` bounds them all together. Whatever still runs when one fails or the time is up
    is killed, so that no command outlives the test that started it.
    """
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as files:
        # Output to files, not pipes: a command blocked on a full pipe while we wait on another would hang.
        outputs = [(files.enter_context(tempfile.TemporaryFile("w+")), files.enter_context(tempfile.TemporaryFile("w+")))
                   for _ in commands]
        # Each in a session of its own: a command's own children (workers, kernels) are killed with it.
        running = [subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
                   for command, (out, err) in zip(commands, outputs)]
        try:
            results = []
            for command, process, (out, err) in zip(commands, running, outputs):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
                out.seek(0), err.seek(0)
                stdout, stderr = out.read(), err.read()
                assert process.returncode == 0, f"{' '.join(command)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
                results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
        finally:
            for process in running:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    return results


def write_notebook(path: Path, nb) -> Path:
    path.write_text(nbformat.writes(nb))
    return path


@pytest.fixture(scope="module")
def module_monkeypatch():
    """pytest's monkeypatch for module-scoped fixtures (a section's measured evidence, computed once per
    file): what it changes, sys.path included, is undone when the module's tests end."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_grad_mode():
    """Notebook code run in this process (public checks) may switch grad off for itself; not for the next module."""
    import torch

    mode = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(mode)
