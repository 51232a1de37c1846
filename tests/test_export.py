"""``autograder export nbgrader|otter``: the exported assignment, graded by nbgrader's and otter's own tools,
gives the same scores as our grader, and releases nothing hidden."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.build.samples import blank_submission, reference_submission
from autograder.export import runtime
from autograder.export.nbgrader import export_nbgrader, nbgrader_submission, read_nbgrader_scores
from autograder.export.otter import PAYLOAD_FILE, export_otter, otter_submission, read_otter_scores
from autograder.export.payload import decode_payload, encode_payload, hidden_payload
from autograder.grade.bundle import load_bundle
from conftest import run_at_once, write_notebook

BIN = Path(sys.executable).parent


def _submissions(assignment, folder: Path) -> dict[str, Path]:
    """Reference, blank, and one with a bug in one exercise (softmax without the max shift: NaN on large logits)."""
    buggy = reference_submission(assignment)
    cell = next(c for c in buggy.cells if c.get("id") == "softmax")
    cell.source = cell.source.replace("x - x.max(dim=-1, keepdim=True).values", "x")
    return {
        "reference": write_notebook(folder / "reference.ipynb", reference_submission(assignment)),
        "blank": write_notebook(folder / "blank.ipynb", blank_submission(assignment)),
        "buggy": write_notebook(folder / "buggy.ipynb", buggy),
    }


@pytest.fixture(scope="module")
def toy(toy_layout, toy_assignment, toy_grader, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export_submissions")
    paths = _submissions(toy_assignment, folder)
    ours = {name: toy_grader.grade_path(path).score for name, path in paths.items()}
    assert ours["reference"] == 10 and ours["blank"] == 0 and 0 < ours["buggy"] < 10, ours
    return toy_assignment, load_bundle(toy_layout.bundles / toy_assignment.id), paths, ours


def _tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return _tools_at_once([(name, *args)], cwd=cwd)[0]


def _tools_at_once(commands: list[tuple[str, ...]], cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Each (tool, *args) of this environment's tools, run at the same time."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader runs `alembic`
    return run_at_once([[str(BIN / name), *args] for name, *args in commands], cwd=cwd, env=env)


@pytest.mark.slow
def test_nbgrader_autograde_gives_our_scores(toy, tmp_path):
    assignment, bundle, paths, ours = toy
    course = tmp_path / "course"
    source_nb = export_nbgrader(assignment, bundle, course)
    _tool("nbgrader", "generate_assignment", assignment.id, "--force", cwd=course)
    release = course / "release" / assignment.id
    released = (release / source_nb.name).read_text()
    assert "_autograder_runtime" not in released and "BEGIN HIDDEN TESTS" not in released
    assert "shifted = x - x.max" not in released, "a solution line was released"
    for student, path in paths.items():
        folder = course / "submitted" / student / assignment.id
        shutil.copytree(release, folder)
        nbgrader_submission(bundle, release / source_nb.name, path, folder / source_nb.name)
    _tool("nbgrader", "autograde", assignment.id, cwd=course)
    assert read_nbgrader_scores(course / "gradebook.db", assignment.id) == pytest.approx(ours)
    graded = (course / "autograded" / "buggy" / assignment.id / source_nb.name).read_text()
    assert "softmax of large logits" in graded, "nbgrader's feedback should carry our failure message"


@pytest.mark.slow
def test_otter_run_gives_our_scores(toy, tmp_path):
    assignment, bundle, paths, ours = toy
    master = export_otter(assignment, bundle, tmp_path / "master")
    _tool("otter", "assign", "--no-run-tests", str(master), str(tmp_path / "dist"))
    student_nb = tmp_path / "dist" / "student" / master.name
    student_text = student_nb.read_text()
    assert "run_from_file" not in student_text and "shifted = x - x.max" not in student_text
    assert not (tmp_path / "dist" / "student" / PAYLOAD_FILE).exists(), "the hidden tests were released"
    autograder_zip = next((tmp_path / "dist" / "autograder").glob("*.zip"))
    submissions = {student: otter_submission(bundle, student_nb, path, tmp_path / "subs" / student / master.name)
                   for student, path in paths.items()}
    _tools_at_once([("otter", "run", "-a", str(autograder_zip), "-o", str(s.parent), str(s)) for s in submissions.values()])
    got = {student: read_otter_scores(s.parent / "results.json") for student, s in submissions.items()}
    assert got == pytest.approx(ours)
    results = json.loads((tmp_path / "subs" / "buggy" / "results.json").read_text())
    assert any("softmax of large logits" in json.dumps(t) for t in results["tests"])


def test_payload_round_trips_and_holds_every_case(toy):
    _, bundle, _, _ = toy
    payload = hidden_payload(bundle)
    assert decode_payload(encode_payload(payload)) == payload
    assert sum(c["points"] for c in payload["cases"]) == pytest.approx(sum(e["points"] for e in payload["exercises"]))
    assert {c["exercise"] for c in payload["cases"]} == {e["name"] for e in payload["exercises"]}


def test_in_kernel_cases_undo_use_reference(toy, monkeypatch):
    """Without a fork per case, what ``use_reference`` binds must not leak into the next case."""
    assignment, bundle, paths, _ = toy
    monkeypatch.chdir(bundle.student_dir)
    namespace: dict = {"__name__": "__main__"}
    for cell in nbformat.read(paths["reference"], as_version=4).cells:
        if cell.cell_type == "code":
            exec(cell.source, namespace)
    student_scale = namespace["Scale"]
    runtime._SESSIONS.clear()
    session = runtime.load_session(encode_payload(hidden_payload(bundle)), namespace)
    grad_mode = torch.is_grad_enabled()
    session.run("double_scale", "double scale")  # binds Scale to the reference's for the case
    assert namespace["Scale"] is student_scale
    assert torch.is_grad_enabled() == grad_mode
    namespace["softmax"] = lambda x: x  # a wrong answer is reported in student terms
    with pytest.raises(runtime.HiddenTestFailed, match="softmax output"):
        session.run("softmax", "softmax random")


@pytest.mark.parametrize("tool, written", [("nbgrader", "source/0.1_toy/toy.ipynb"), ("otter", "toy.ipynb")])
def test_cli_export(toy_layout, tool, written, tmp_path, capsys):
    from autograder.cli import main

    assert main(["--root", str(toy_layout.root), "export", tool, "0.1", str(tmp_path / tool)]) == 0
    assert (tmp_path / tool / written).exists()
    assert "without our sandbox" in capsys.readouterr().err
