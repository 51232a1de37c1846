"""Intake: folders, Canvas and Gradescope zips mapped to the roster, stored, recorded, and counted."""

from __future__ import annotations

import os
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from autograder.cli import main
from autograder.cohort.collect import (
    collect,
    counted_submissions,
    detect_format,
    match_file_name,
    missing_students,
    parse_canvas_name,
    read_canvas_zip,
    read_folder,
    read_gradescope_zip,
)
from autograder.cohort.commands import load_course_cohort
from autograder.cohort.late import Lateness
from autograder.gradebook import intake_for, open_gradebook
from autograder.layout import CourseLayout
from conftest import TOY_COURSE

LONDON = ZoneInfo("Europe/London")
ROSTER = """id,name,email,canvas_id,sis_id
s0001,Ada Lovelace,ada.lovelace@example.ac.uk,5001,900001
s0002,Alan Turing,alan.turing@example.ac.uk,,900002
s0003,Grace Hopper,ghopper@example.ac.uk,5003,
"""
COHORT = """
[cohort]
timezone = "Europe/London"
seed = 11
roster = "roster.csv"

[late_policy]
grace_minutes = 15
penalty_per_day = 0.10
max_penalty = 0.50

[[assignments]]
id = "0.1"
opens = "2026-09-07 09:00"
due = "2026-09-21 23:59"

[extensions]
s0003 = { "0.1" = "2026-09-24 23:59" }
"""
ASSIGNMENT = "0.1_toy"


@pytest.fixture
def course(tmp_path) -> CourseLayout:
    root = tmp_path / "course"
    shutil.copytree(TOY_COURSE / "source", root / "source")
    cohorts = root / "instructors" / "cohorts"
    cohorts.mkdir(parents=True)
    (cohorts / "roster.csv").write_text(ROSTER)
    (cohorts / "autumn.toml").write_text(COHORT)
    return CourseLayout(root)


@pytest.fixture
def cohort(course):
    return load_course_cohort(course, "autumn")


def notebook(text: str) -> bytes:
    return ('{"cells": [], "metadata": {"note": "%s"}, "nbformat": 4, "nbformat_minor": 5}\n' % text).encode()


def local(*fields) -> datetime:
    return datetime(*fields, tzinfo=LONDON)


def by_name(received):
    return {r.original_name: r for r in received}


# ---------------------------------------------------------------------- parsers


def test_file_names_map_by_id_then_email_then_name(cohort):
    roster = cohort.roster
    assert match_file_name("hw1_s0001.ipynb", roster)[0].id == "s0001"
    assert match_file_name("s0002/toy.ipynb", roster)[0].id == "s0002"  # a folder named by id
    assert match_file_name("alan.turing-toy.ipynb", roster)[0].id == "s0002"
    assert match_file_name("Grace_Hopper final.py", roster)[0].id == "s0003"
    assert match_file_name("HopperGrace.py", roster)[0].id == "s0003"  # last name first
    assert match_file_name("s00012.ipynb", roster) == (None, "no roster id, email or name in the file's path")
    student, why = match_file_name("s0001_with_s0002.ipynb", roster)
    assert student is None and "ambiguous" in why and "s0001, s0002" in why


def test_folder_intake_uses_mtime_and_skips_hidden_and_other_files(tmp_path, cohort):
    folder = tmp_path / "inbox"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    files = {
        "s0001_toy.ipynb": notebook("ada"),
        "alan.turing-toy.ipynb": notebook("alan"),
        "Grace Hopper.py": b"# %%\nx = 1\n",
        "mystery.ipynb": notebook("who"),
        "notes.txt": b"not a submission",
        ".ipynb_checkpoints/s0001_toy-checkpoint.ipynb": notebook("old"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    when = local(2026, 9, 20, 18, 30).timestamp()
    os.utime(folder / "s0001_toy.ipynb", (when, when))

    received = by_name(read_folder(folder, cohort))
    assert set(received) == {"s0001_toy.ipynb", "alan.turing-toy.ipynb", "Grace Hopper.py", "mystery.ipynb"}
    assert {n: r.student for n, r in received.items()} == {
        "s0001_toy.ipynb": "s0001", "alan.turing-toy.ipynb": "s0002", "Grace Hopper.py": "s0003", "mystery.ipynb": None,
    }
    assert received["s0001_toy.ipynb"].submitted_at == local(2026, 9, 20, 18, 30)
    assert received["mystery.ipynb"].problem == "no roster id, email or name in the file's path"
    assert all(r.source == "folder" for r in received.values())


def test_folder_intake_finds_the_student_in_a_folder_of_their_own(tmp_path, cohort):
    """One folder per student (downloads, GitHub Classroom), every file named as the release named it."""
    folder = tmp_path / "inbox"
    for student in ("s0001", "alan.turing", "Grace Hopper", "nobody"):
        (folder / student).mkdir(parents=True)
        (folder / student / "0.1_toy.ipynb").write_bytes(notebook(student))
    received = by_name(read_folder(folder, cohort))
    assert {n: r.student for n, r in received.items()} == {
        "s0001/0.1_toy.ipynb": "s0001", "alan.turing/0.1_toy.ipynb": "s0002",
        "Grace Hopper/0.1_toy.ipynb": "s0003", "nobody/0.1_toy.ipynb": None,
    }


def test_canvas_entry_names():
    entry = parse_canvas_name("turingalan_LATE_6002_778_toy-1.ipynb")
    assert (entry.squashed_name, entry.late, entry.canvas_user_id, entry.submission_id, entry.original_name) == (
        "turingalan", True, "6002", "778", "toy-1.ipynb")
    assert parse_canvas_name("lovelaceada_5001_777_my_toy_v2.ipynb").original_name == "my_toy_v2.ipynb"
    assert parse_canvas_name("lovelaceada_late_5001_777_toy.ipynb").late  # Canvas also writes it in lowercase
    assert parse_canvas_name("toy.ipynb") is None


def write_canvas_zip(path: Path, entries: dict[str, tuple[tuple, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, (date_time, data) in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=date_time), data)
    return path


def canvas_zip(tmp_path: Path) -> Path:
    return write_canvas_zip(tmp_path / "submissions.zip", {
        "lovelaceada_5001_777_toy.ipynb": ((2026, 9, 20, 10, 0, 0), notebook("ada on time")),
        "lovelaceada_LATE_5001_790_toy-1.ipynb": ((2026, 9, 23, 9, 0, 0), notebook("ada late")),
        "turingalan_LATE_6002_778_toy.ipynb": ((2026, 9, 22, 0, 10, 0), notebook("alan in grace")),
        "hoppergrace_5003_779_toy.ipynb": ((2026, 9, 23, 12, 0, 0), notebook("grace extension")),
        "nobodyelse_9999_780_toy.ipynb": ((2026, 9, 21, 12, 0, 0), notebook("stranger")),
        "toy.ipynb": ((2026, 9, 21, 12, 0, 0), notebook("renamed")),
    })


def test_canvas_zip_maps_by_canvas_id_else_name_and_reads_local_times(tmp_path, cohort):
    path = canvas_zip(tmp_path)
    assert detect_format(path) == "canvas"
    received = by_name(read_canvas_zip(path, cohort))
    assert {n: r.student for n, r in received.items()} == {
        "lovelaceada_5001_777_toy.ipynb": "s0001",
        "lovelaceada_LATE_5001_790_toy-1.ipynb": "s0001",
        "turingalan_LATE_6002_778_toy.ipynb": "s0002",  # no canvas_id in the roster: matched by name
        "hoppergrace_5003_779_toy.ipynb": "s0003",
        "nobodyelse_9999_780_toy.ipynb": None,
        "toy.ipynb": None,
    }
    assert received["turingalan_LATE_6002_778_toy.ipynb"].submitted_at == local(2026, 9, 22, 0, 10)
    assert "matches no roster canvas_id or name" in received["nobodyelse_9999_780_toy.ipynb"].problem
    assert "does not follow Canvas's" in received["toy.ipynb"].problem


def gradescope_zip(tmp_path: Path) -> Path:
    metadata = """\
submission_101:
  :submitters:
  - :name: Ada Lovelace
    :sid: '900001'
    :email: ada.lovelace@example.ac.uk
  :created_at: 2026-09-21 22:03:11.482013000 +0100
  :score: 10.0
submission_102:
  :submitters:
  - :name: Alan Turing
    :sid: '900002'
    :email: alan.turing@example.ac.uk
  - :name: Grace Hopper
    :sid: ''
    :email: GHopper@example.ac.uk
  :created_at: 2026-09-21 21:00:00.000000 Z
submission_103:
  :submitters:
  - :name: Someone Else
    :sid: '123'
    :email: someone@elsewhere.edu
  :created_at: 2026-09-21 20:00:00.000000 +01:00
"""
    path = tmp_path / "submissions_export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        top = "assignment_4242_export"
        archive.writestr(f"{top}/submission_metadata.yml", metadata)
        archive.writestr(f"{top}/submission_101/toy.ipynb", notebook("ada"))
        archive.writestr(f"{top}/submission_102/toy.ipynb", notebook("pair"))
        archive.writestr(f"{top}/submission_103/toy.ipynb", notebook("stranger"))
        archive.writestr(f"{top}/submission_104/toy.ipynb", notebook("unlisted"))
    return path


def test_gradescope_export_maps_by_sid_then_email_and_reads_created_at(tmp_path, cohort):
    path = gradescope_zip(tmp_path)
    assert detect_format(path) == "gradescope"
    received = read_gradescope_zip(path, cohort)
    mapped = sorted((r.original_name.split("/")[1], r.student) for r in received if r.student)
    assert mapped == [("submission_101", "s0001"), ("submission_102", "s0002"), ("submission_102", "s0003")]
    ada = next(r for r in received if r.student == "s0001")
    assert ada.submitted_at == datetime(2026, 9, 21, 21, 3, 11, 482013, tzinfo=timezone.utc)
    pair = next(r for r in received if r.student == "s0002")
    assert pair.submitted_at == datetime(2026, 9, 21, 21, 0, tzinfo=timezone.utc)
    problems = {r.original_name.split("/")[1]: r.problem for r in received if r.student is None}
    assert problems.keys() == {"submission_103", "submission_104"}
    assert "Someone Else (sid 123" in problems["submission_103"] and "not in the roster" in problems["submission_103"]
    assert "not listed in submission_metadata.yml" in problems["submission_104"]


# ---------------------------------------------------------------------- storing, recording, counting


def test_collect_stores_copies_records_once_and_counts_per_policy(tmp_path, course, cohort):
    engine = open_gradebook(tmp_path / "gradebook.sqlite")
    path = canvas_zip(tmp_path)
    report = collect(engine, course.root, cohort, ASSIGNMENT, path)
    assert report.fmt == "canvas" and report.newly_recorded == 4 and len(report.unmapped) == 2
    assert path.exists()  # copied, not moved

    ada_dir = course.root / "submissions" / "autumn" / ASSIGNMENT / "s0001"
    stored = sorted(p.name for p in ada_dir.iterdir())
    assert len(stored) == 2 and stored[0].startswith("20260920T090000Z_") and stored[0].endswith(".ipynb")
    items = intake_for(engine, "autumn", ASSIGNMENT, "s0001")
    assert {Path(i.stored_path).read_bytes() for i in items} == {notebook("ada on time"), notebook("ada late")}
    assert {i.source for i in items} == {"canvas"}

    again = collect(engine, course.root, cohort, ASSIGNMENT, path)
    assert again.newly_recorded == 0
    assert len(intake_for(engine, "autumn", ASSIGNMENT)) == 4
    assert sorted(p.name for p in ada_dir.iterdir()) == stored  # nothing written twice, nothing overwritten

    counted = {c.student: c for c in counted_submissions(engine, cohort, ASSIGNMENT)}
    assert set(counted) == {"s0001", "s0002", "s0003"}
    # Ada: her on-time hand-in counts over the later late one.
    assert counted["s0001"].path.read_bytes() == notebook("ada on time")
    assert counted["s0001"].lateness == Lateness(0, 0.0) and counted["s0001"].files_received == 2
    # Alan: 00:10 is inside the 15 minutes of grace, whatever Canvas's LATE says.
    assert counted["s0002"].lateness == Lateness(0, 0.0)
    # Grace: 1.5 days after the cohort's due date, but inside her extension.
    assert counted["s0003"].lateness == Lateness(0, 0.0)


def test_plain_grading_of_the_submissions_folder_leaves_the_cohorts_copies_alone(tmp_path, course, cohort, capsys):
    """`grade 0.1 submissions/` next to a cohort's intake: the collected copies are the cohort's to grade (with its
    late policy, one counted per student), not plain submissions named after their timestamps."""
    from autograder.build.samples import reference_submission
    from autograder.authoring.assignment import find_assignment
    from conftest import available_sandbox, write_notebook

    collect(open_gradebook(tmp_path / "gradebook.sqlite"), course.root, cohort, ASSIGNMENT, canvas_zip(tmp_path))
    write_notebook(course.intake / "walk_in.ipynb", reference_submission(find_assignment(course.source, "0.1")))
    args = ["--root", str(course.root), "grade", "0.1", str(course.intake), "--out", str(tmp_path / "out"),
            "--db", str(tmp_path / "plain.sqlite")]
    assert main([*args, *(["--no-sandbox"] if available_sandbox() == "none" else [])]) == 0
    said = capsys.readouterr().err
    assert "skipped 4 file(s) collected for cohort autumn" in " ".join(said.split()), said
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["walk_in"]


def test_late_only_submission_counts_with_its_penalty_and_missing_students(tmp_path, course, cohort):
    engine = open_gradebook(tmp_path / "gradebook.sqlite")
    path = write_canvas_zip(tmp_path / "late.zip", {
        "lovelaceada_LATE_5001_790_toy.ipynb": ((2026, 9, 23, 9, 0, 0), notebook("ada late")),
        "lovelaceada_LATE_5001_791_notes.pdf": ((2026, 9, 24, 9, 0, 0), b"%PDF-1.4 not a notebook"),
    })
    collect(engine, course.root, cohort, ASSIGNMENT, path)
    (counted,) = counted_submissions(engine, cohort, ASSIGNMENT)
    assert counted.student == "s0001" and counted.path.suffix == ".ipynb"  # the later PDF is kept but never counts
    assert counted.lateness == Lateness(2, 0.20) and counted.files_received == 2
    assert [s.id for s in missing_students(engine, cohort, ASSIGNMENT)] == ["s0002", "s0003"]


def test_cli_reports_unmapped_files_and_exits_nonzero_after_storing_the_rest(tmp_path, course, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich folds long names on a narrow terminal; keep each on one line here
    db = tmp_path / "gb.sqlite"
    path = gradescope_zip(tmp_path)
    args = ["--root", str(course.root), "collect", "--cohort", "autumn", "0.1", str(path), "--db", str(db)]
    assert main(args) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "not mapped" in text and "submission_103" in text and "submission_104" in text
    assert "Ada Lovelace" in text and "nothing" not in text  # all three roster students have a file
    assert len(intake_for(open_gradebook(db), "autumn", ASSIGNMENT)) == 3

    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "s0001.ipynb").write_bytes(notebook("ada again"))
    assert main(["--root", str(course.root), "collect", "--cohort", "autumn", "0.1", str(folder), "--db", str(db)]) == 0
    assert len(intake_for(open_gradebook(db), "autumn", ASSIGNMENT, "s0001")) == 2


def test_cli_names_an_assignment_outside_the_cohort(course, capsys):
    assert main(["--root", str(course.root), "collect", "--cohort", "autumn", "1.1", str(course.root)]) == 2
    assert "not in cohort autumn" in capsys.readouterr().err
