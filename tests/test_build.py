"""The build: determinism, staleness checks, leak-freedom, and manifest contents."""

from __future__ import annotations

import json
import shutil

import pytest

from autograder.authoring.assignment import discover_assignments
from autograder.authoring.notebook import read_source_notebook, solution_regions
from autograder.build import build_course
from autograder.build.compile import LeakError, compile_assignment
from autograder.build.leaks import find_leaks
from autograder.build.tree import read_tree
from autograder.cli import main as cli
from autograder.layout import CourseLayout
from conftest import REPO, TOY_COURSE


@pytest.fixture
def scratch_course(tmp_path):
    shutil.copytree(TOY_COURSE / "source", tmp_path / "source")
    return CourseLayout(tmp_path)


def test_rebuild_is_byte_identical(scratch_course):
    build_course(scratch_course)
    first = read_tree(scratch_course.release) | {f"bundle/{k}": v for k, v in read_tree(scratch_course.bundles).items()}
    build_course(scratch_course)
    second = read_tree(scratch_course.release) | {f"bundle/{k}": v for k, v in read_tree(scratch_course.bundles).items()}
    assert first == second


def test_check_detects_stale_release(scratch_course):
    assert cli(["--root", str(scratch_course.root), "build", "--check"]) == 1  # nothing built yet
    assert cli(["--root", str(scratch_course.root), "build"]) == 0
    assert cli(["--root", str(scratch_course.root), "build", "--check"]) == 0
    notebook = scratch_course.source / "0.1_toy" / "toy.py"
    notebook.write_text(notebook.read_text().replace("Softmax over the last dimension.", "Softmax, last dim."))
    assert cli(["--root", str(scratch_course.root), "build", "--check"]) == 1


def test_release_keeps_cell_ids_and_hides_solutions(scratch_course):
    build_course(scratch_course)
    release = json.loads((scratch_course.release / "0.1_toy" / "toy.ipynb").read_text())
    ids = [c["id"] for c in release["cells"]]
    assert "softmax" in ids and "modules" in ids
    softmax = "".join(next(c for c in release["cells"] if c["id"] == "softmax")["source"])
    assert "def softmax(x: torch.Tensor) -> torch.Tensor:" in softmax  # signature stays
    assert '"""Softmax over the last dimension."""' in softmax  # docstring stays
    assert "raise NotImplementedError()" in softmax and "exps" not in softmax


def test_manifest_lists_exercises_cells_and_hashes(scratch_course):
    build_course(scratch_course)
    manifest = json.loads((scratch_course.bundles / "0.1_toy" / "manifest.json").read_text())
    assert [(e["name"], e["points"], e["cells"]) for e in manifest["exercises"]] == [
        ("softmax", 4.0, ["softmax"]),
        ("scale", 3.0, ["modules"]),
        ("double_scale", 3.0, ["modules"]),
    ]
    assert "reference.py" in manifest["files"] and "hidden/tests/test_toy.py" in manifest["files"]
    assert len(manifest["bundle_hash"]) == 64


def test_leak_is_refused(scratch_course):
    notebook = scratch_course.source / "0.1_toy" / "toy.py"
    # An instructor pastes a solution line into a markdown cell by mistake.
    notebook.write_text(notebook.read_text().replace(
        "# A softmax, a module", "# Hint: return exps / exps.sum(dim=-1, keepdim=True)\n# A softmax, a module"))
    with pytest.raises(LeakError, match="exps / exps.sum"):
        compile_assignment(discover_assignments(scratch_course.source)[0])


def test_tampered_bundle_is_refused(scratch_course):
    from autograder.grade.bundle import BundleError, load_bundle

    build_course(scratch_course)
    bundle = scratch_course.bundles / "0.1_toy"
    load_bundle(bundle)
    (bundle / "hidden" / "tests" / "test_toy.py").write_text("# all tests removed\n")
    with pytest.raises(BundleError, match="modified hidden/tests/test_toy.py"):
        load_bundle(bundle)


def test_a_changed_grading_setting_is_a_new_bundle(scratch_course):
    """A fixed tolerance or limit changes no file, yet grades given under the old bundle must not be kept."""
    from autograder.grade.bundle import BundleError, load_bundle

    toml = scratch_course.source / "0.1_toy" / "assignment.toml"
    build_course(scratch_course)
    before = load_bundle(scratch_course.bundles / "0.1_toy").bundle_hash
    toml.write_text(toml.read_text().replace("test_timeout_s = 10", "test_timeout_s = 12"))
    build_course(scratch_course)
    after = load_bundle(scratch_course.bundles / "0.1_toy")
    assert after.bundle_hash != before
    # The settings are covered by the hash: editing them in the manifest is tampering.
    manifest_path = after.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["limits"]["test_timeout_s"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest hash does not match its contents"):
        load_bundle(after.root)


def test_an_unchanged_source_is_not_compiled_again_and_any_change_is(scratch_course, monkeypatch):
    """Grading checks the bundle against its source first; compiling costs a second (nbgrader's import)."""
    import autograder.build.compile as compile_module
    from autograder.authoring.assignment import find_assignment
    from autograder.build import ensure_bundle
    from autograder.grade.bundle import load_bundle

    assignment = find_assignment(scratch_course.source, "0.1")
    ensure_bundle(scratch_course, assignment)
    compiled = []
    real_compile = compile_module.compile_assignment
    monkeypatch.setattr(compile_module, "compile_assignment", lambda a: compiled.append(a.id) or real_compile(a))
    ensure_bundle(scratch_course, assignment)
    assert compiled == []

    # A hidden test edited in source/ reaches the bundle at the next grading.
    test_file = scratch_course.source / "0.1_toy" / "tests" / "test_toy.py"
    test_file.write_text(test_file.read_text() + "\n# edited\n")
    ensure_bundle(scratch_course, assignment)
    assert compiled == ["0.1_toy"]
    bundle = load_bundle(scratch_course.bundles / "0.1_toy")
    assert (bundle.root / "hidden" / "tests" / "test_toy.py").read_text().endswith("# edited\n")

    # So does a bundle removed by hand, even with its stamp left behind.
    shutil.rmtree(scratch_course.bundles / "0.1_toy")
    ensure_bundle(scratch_course, assignment)
    assert compiled == ["0.1_toy", "0.1_toy"]
    load_bundle(scratch_course.bundles / "0.1_toy")


@pytest.mark.parametrize("assignment", discover_assignments(REPO / "source"), ids=lambda a: a.id)
def test_no_solution_line_anywhere_under_release(assignment):
    """Every line of every solution region is absent from the committed release/."""
    source_nb = read_source_notebook(assignment.source_dir / assignment.notebook)
    assert any(solution_regions(c.source) for c in source_nb.cells)
    release_dir = REPO / "release" / assignment.id
    files = read_tree(release_dir)
    assert files, f"{release_dir} is empty: run `autograder build`"
    assert find_leaks(source_nb, files) == []
