"""Cohort files and rosters: what loads, and what each mistake is told."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from autograder.cohort.config import CohortError, LatePolicy, load_cohort, read_cohort, read_roster
from autograder.cohort.commands import load_course_cohort
from autograder.layout import CourseLayout
from conftest import REPO

ROSTER = "id,name,email\ns0001,Ada Lovelace,ada@example.ac.uk\ns0042,Alan Turing,alan@example.ac.uk\n"
COHORT = """
[cohort]
timezone = "Europe/London"
seed = 20260907
roster = "roster.csv"

[late_policy]
grace_minutes = 15
penalty_per_day = 0.10
max_penalty = 0.50
counts = "latest_on_time"

[[assignments]]
id = "0.1"
opens = "2026-09-07 09:00"
due = "2026-09-21 23:59"

[extensions]
s0042 = { "0.1" = "2026-09-24 23:59" }
"""


def write_cohort(folder: Path, text: str = COHORT, roster: str = ROSTER, name: str = "autumn") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roster.csv").write_text(roster)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def refused(path: Path, known: list[str] | None = None) -> str:
    with pytest.raises(CohortError) as info:
        read_cohort(path, known)
    message = str(info.value)
    assert str(path) in message, "every error names the file"
    return message


def test_a_good_cohort_loads(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path), known_assignments=["0.1_toy", "1.1_other"])
    london = ZoneInfo("Europe/London")
    assert cohort.name == "autumn" and cohort.seed == 20260907 and cohort.timezone == london
    assert [s.id for s in cohort.roster] == ["s0001", "s0042"]
    assert cohort.late_policy == LatePolicy(15, 0.10, 0.50, "latest_on_time")
    (slot,) = cohort.assignments
    assert slot.id == "0.1_toy"  # the prefix is resolved against the course
    assert slot.due == datetime(2026, 9, 21, 23, 59, tzinfo=london)
    assert cohort.assignment("0.1") is slot
    assert cohort.due_for("s0042", "0.1_toy") == datetime(2026, 9, 24, 23, 59, tzinfo=london)
    assert cohort.due_for("s0001", "0.1_toy") == slot.due


def test_the_example_cohort_loads_against_this_course():
    cohort = load_course_cohort(CourseLayout(REPO), "example")
    assert [a.id for a in cohort.assignments][:2] == ["1.1_transformer_from_scratch", "1.2_intro_to_mech_interp"]
    assert cohort.extension_due("s0042", "1.1_transformer_from_scratch") == datetime(
        2026, 9, 24, 23, 59, tzinfo=ZoneInfo("Europe/London"))
    assert {s.canvas_id for s in cohort.roster} >= {"104252"}


def test_unknown_student_in_extensions(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace('s0042 = {', 's9999 = {')))
    assert "[extensions] s9999" in message and "roster" in message


def test_extension_for_an_assignment_not_in_the_cohort(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace('{ "0.1" =', '{ "2.3" =')))
    assert "[extensions] s0042.2.3" in message and "0.1" in message


def test_due_before_opens(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace('due = "2026-09-21 23:59"', 'due = "2026-09-01 23:59"')))
    assert "assignments[0]" in message and "not after opens" in message


def test_unknown_timezone(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace("Europe/London", "Europe/Londn")))
    assert "[cohort] timezone 'Europe/Londn'" in message and "IANA" in message


def test_a_local_time_that_does_not_exist(tmp_path):
    """01:30 on 29 March 2026 never happens in London: the clocks jump from 01:00 to 02:00."""
    message = refused(write_cohort(tmp_path, COHORT.replace("2026-09-21 23:59", "2026-03-29 01:30").replace(
        "2026-09-07 09:00", "2026-03-01 09:00")))
    assert "assignments[0].due" in message and "does not exist in Europe/London" in message


def test_a_malformed_date(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace("2026-09-21 23:59", "21/09/2026")))
    assert "assignments[0].due" in message and "YYYY-MM-DD HH:MM" in message


def test_roster_missing_a_column(tmp_path):
    message = refused(write_cohort(tmp_path, roster="id,name\ns0001,Ada Lovelace\n"))
    assert "roster.csv" in message and "missing the column(s) email" in message


def test_roster_with_duplicate_ids(tmp_path):
    message = refused(write_cohort(tmp_path, roster=ROSTER + "s0001,Ada Byron,byron@example.ac.uk\n"))
    assert "roster.csv" in message and "duplicate id 's0001' on lines 2 and 4" in message


def test_roster_with_an_empty_id_names_the_line(tmp_path):
    with pytest.raises(CohortError, match=re.escape("roster.csv, line 3: empty id")):
        read_roster(write_cohort(tmp_path, roster=ROSTER.replace("s0042", "")).parent / "roster.csv")


def test_roster_file_missing(tmp_path):
    message = refused(write_cohort(tmp_path, COHORT.replace('"roster.csv"', '"students.csv"')))
    assert "[cohort] roster" in message and "students.csv" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("penalty_per_day = 0.10", "penalty_per_days = 0.10", "[late_policy]: unknown key(s) penalty_per_days"),
        ("max_penalty = 0.50", "max_penalty = 50", "[late_policy] max_penalty must be a number from 0 to 1"),
        ('counts = "latest_on_time"', 'counts = "best"', "[late_policy] counts must be one of"),
        ("seed = 20260907", 'seed = "abc"', "[cohort] seed must be an integer"),
        ('id = "0.1"', 'id = "9.9"', "assignments[0].id: no assignment '9.9' in this course"),
    ],
)
def test_each_bad_value_is_named(tmp_path, old, new, expected):
    assert old in COHORT
    assert expected in refused(write_cohort(tmp_path, COHORT.replace(old, new)), known=["0.1_toy"])


def test_a_missing_cohort_lists_the_known_ones(tmp_path):
    write_cohort(tmp_path / "instructors" / "cohorts", name="spring")
    with pytest.raises(CohortError, match=r"no cohort 'autumn'.*known cohorts: spring"):
        load_cohort(tmp_path, "autumn")


def test_asking_for_an_assignment_the_cohort_does_not_have(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    with pytest.raises(CohortError, match=r"assignment '1.1' is not in cohort autumn.*its assignments: 0.1"):
        cohort.assignment("1.1")


def test_the_command_line_shows_the_section_a_cohort_error_names(tmp_path, capsys):
    """Rich read "[extensions]" in an error as markup and dropped it; the message is printed as written."""
    import shutil

    from autograder.cli import main
    from conftest import TOY_COURSE

    shutil.copytree(TOY_COURSE / "source", tmp_path / "source")
    write_cohort(tmp_path / "instructors" / "cohorts", COHORT.replace('s0042 = {', 's9999 = {').replace("1.1_other", "0.1"))
    assert main(["--root", str(tmp_path), "override", "0.1", "--cohort", "autumn", "--history"]) == 2
    assert "[extensions] s9999" in " ".join(capsys.readouterr().err.split())
