"""``autograder release``: refuses stale builds and references that lose points with the cohort's seed;
otherwise writes the cohort's folder and a reproducible zip."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.authoring.assignment import find_assignment
from autograder.build import build_course
from autograder.cli import main
from autograder.cohort.commands import load_course_cohort
from autograder.cohort.config import LatePolicy
from autograder.cohort.release import (
    ReleaseRefused,
    describe_late_policy,
    release_assignment,
    write_cohort_release,
)
from autograder.grade.runner import run_seed
from autograder.layout import CourseLayout
from conftest import TOY_COURSE, available_sandbox

ASSIGNMENT = "0.1_toy"
TOY_SEED = 7  # source/0.1_toy/assignment.toml
COHORT = """
[cohort]
timezone = "America/New_York"
seed = {seed}
roster = "roster.csv"

[late_policy]
grace_minutes = 10
penalty_per_day = 0.25
max_penalty = 0.75

[[assignments]]
id = "0.1"
opens = "2026-01-12 09:00"
due = "2026-01-26 17:00"
"""


@pytest.fixture(scope="module")
def built_course(tmp_path_factory) -> Path:
    """The toy course, built once (release/ and bundles); each test works on its own copy."""
    root = tmp_path_factory.mktemp("built") / "course"
    shutil.copytree(TOY_COURSE / "source", root / "source")
    build_course(CourseLayout(root))
    return root


def course_copy(built_course: Path, tmp_path: Path, seed: int = 20260112) -> CourseLayout:
    root = tmp_path / "course"
    shutil.copytree(built_course, root)
    cohorts = root / "instructors" / "cohorts"
    cohorts.mkdir(parents=True)
    (cohorts / "roster.csv").write_text("id,name,email\ns1,Ada Lovelace,ada@example.edu\n")
    (cohorts / "spring.toml").write_text(COHORT.format(seed=seed))
    return CourseLayout(root)


def test_release_writes_the_folder_and_a_reproducible_zip(built_course, tmp_path, capsys):
    layout = course_copy(built_course, tmp_path)
    sandbox = [] if available_sandbox() == "bwrap" else ["--no-sandbox"]
    assert main(["--root", str(layout.root), "release", "--cohort", "spring", *sandbox]) == 0  # all its assignments
    assert "released 0.1_toy to spring" in capsys.readouterr().err

    out = layout.root / "build" / "cohorts" / "spring"
    folder, zip_path = out / ASSIGNMENT, out / f"{ASSIGNMENT}.zip"
    release_files = sorted(p.name for p in (layout.release / ASSIGNMENT).iterdir())
    assert sorted(p.name for p in folder.iterdir()) == sorted(release_files + ["README.md"])
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# Toy assignment for the grader's own tests\n")
    assert "**Due:** Monday 26 January 2026, 17:00 (America/New_York, EST)" in readme
    assert "up to 10 minutes after the deadline" in readme and "25% of the score" in readme and "75%" in readme
    assert "20260112" not in readme  # the seed stays with the instructors

    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert names == sorted(names) == sorted(f"{ASSIGNMENT}/{n}" for n in release_files + ["README.md"])
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.read(f"{ASSIGNMENT}/toy.ipynb") == (layout.release / ASSIGNMENT / "toy.ipynb").read_bytes()
        assert archive.read(f"{ASSIGNMENT}/README.md").decode() == readme
    first = zip_path.read_bytes()

    # Written again (later, from a fresh read of the files): the same bytes.
    (folder / "README.md").write_text("stale")
    cohort = load_course_cohort(layout, "spring")
    again = write_cohort_release(layout, cohort, find_assignment(layout.source, "0.1"))
    assert again.zip_path == zip_path and zip_path.read_bytes() == first
    assert (folder / "README.md").read_text() == readme


def test_release_refuses_a_stale_build(built_course, tmp_path, capsys):
    layout = course_copy(built_course, tmp_path)
    notebook = layout.source / ASSIGNMENT / "toy.py"
    notebook.write_text(notebook.read_text().replace("# # Toy assignment", "# # Toy assignment, revised"))
    cohort = load_course_cohort(layout, "spring")
    with pytest.raises(ReleaseRefused) as info:
        release_assignment(layout, cohort, "0.1", sandbox=available_sandbox())
    message = str(info.value)
    assert "release/ is out of date" in message and "toy.ipynb" in message and "autograder build 0.1_toy" in message
    assert not (layout.root / "build" / "cohorts").exists()

    assert main(["--root", str(layout.root), "release", "--cohort", "spring"]) == 1
    assert "not released" in capsys.readouterr().err


def test_release_refuses_a_reference_that_loses_points_with_the_cohort_seed(built_course, tmp_path):
    """A hidden test that is wrong for some seeds: fine for one cohort, refused for another.

    This also shows the cohort's seed reaches the hidden tests' ``seed`` fixture.
    """
    seeds: dict[int, int] = {}
    for s in range(1, 50):
        seeds.setdefault(run_seed(TOY_SEED, s) % 2, s)
    good, bad = seeds[1], seeds[0]
    for seed, should_release in ((good, True), (bad, False)):
        layout = course_copy(built_course, tmp_path / str(seed), seed=seed)
        tests = layout.source / ASSIGNMENT / "tests" / "test_toy.py"
        tests.write_text(tests.read_text().replace(
            "def test_softmax_random(student, reference, seed):\n",
            "def test_softmax_random(student, reference, seed):\n"
            "    assert seed % 2 == 1, 'a hidden test that is broken for even seeds'\n",
        ))
        cohort = load_course_cohort(layout, "spring")
        if should_release:
            assert release_assignment(layout, cohort, "0.1", sandbox=available_sandbox()).zip_path.exists()
            continue
        with pytest.raises(ReleaseRefused) as info:
            release_assignment(layout, cohort, "0.1", sandbox=available_sandbox())
        message = str(info.value)
        assert f"scores 8/10 with this cohort's seed ({seed})" in message
        lost = [line.strip() for line in message.splitlines() if line.startswith("  ")]
        assert lost == ["softmax: 2/4 — softmax random: a hidden test that is broken for even seeds"]
        assert not (layout.root / "build" / "cohorts").exists()


def test_late_policy_in_words():
    strict = describe_late_policy(LatePolicy(grace_minutes=0, penalty_per_day=0.2, max_penalty=1.0, counts="latest"))
    assert strict.startswith("After the deadline, 20% of the score")
    assert "latest submission counts, late or not" in strict
    assert "without penalty" in describe_late_policy(LatePolicy())
