"""Grade exports parse back with the columns their destinations expect and the grades the gradebook holds."""

from __future__ import annotations

import csv
import io
import json

from autograder.reports.exports import (
    CANVAS_POINTS_POSSIBLE,
    CANVAS_STUDENT_COLUMNS,
    PLAIN_COLUMNS,
    canvas_csv,
    gradescope_results,
    plain_csv,
)
from cohort_samples import HOSTILE_NAME, sample_view


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_csv_has_canvas_columns_points_row_and_final_scores():
    view = sample_view()
    table = rows(canvas_csv(view))
    header, points, *students = table
    assert header == [*CANVAS_STUDENT_COLUMNS, "1.1 Transformers from scratch (777)"]  # existing Canvas assignment
    assert points == [CANVAS_POINTS_POSSIBLE, "", "", "", "", "10"]
    by_sis = {r[2]: r for r in students}
    assert len(students) == len(view.students)
    assert by_sis["S001"] == ["Ada Lovelace", "", "S001", "ada@example.edu", "", "10"]  # roster's SIS id wins
    assert by_sis["bob"][-1] == "6.5"  # 8 from the tests, 1.5 off for lateness
    assert by_sis["cy"][:2] == ["Cy Cipher", "4242"] and by_sis["cy"][4] == "B" and by_sis["cy"][-1] == "9"  # override
    assert by_sis["dee"][-1] == ""  # not submitted: an empty cell leaves Canvas's grade alone
    assert by_sis["eve"][0] == HOSTILE_NAME  # quoted by csv, not mangled


def test_missing_as_zero_is_only_on_request():
    view = sample_view()
    default = {r[2]: r[-1] for r in rows(canvas_csv(view))[2:]}
    zeros = {r[2]: r[-1] for r in rows(canvas_csv(view, missing_as_zero=True))[2:]}
    assert default["dee"] == "" and zeros["dee"] == "0"
    assert {k: v for k, v in zeros.items() if default[k] == ""} == {"dee": "0", "s06": "0", "s13": "0"}
    assert {k: v for k, v in zeros.items() if default[k] != ""} == {k: v for k, v in default.items() if v != ""}


def test_a_new_canvas_assignment_is_named_by_its_title():
    from dataclasses import replace

    view = sample_view()
    view = replace(view, assignments=(replace(view.assignments[0], canvas_id=""),))
    assert rows(canvas_csv(view))[0][-1] == "1.1 Transformers from scratch"


def test_plain_csv_one_row_per_student_and_assignment():
    view = sample_view()
    table = list(csv.DictReader(io.StringIO(plain_csv(view))))
    assert tuple(table[0]) == PLAIN_COLUMNS
    assert len(table) == len(view.students) * len(view.assignments)
    by_id = {r["student_id"]: r for r in table}
    bob, cy, dee = by_id["bob"], by_id["cy"], by_id["dee"]
    assert (bob["auto_score"], bob["late_penalty"], bob["final_score"], bob["late"]) == ("8", "1.5", "6.5", "yes")
    assert bob["submitted_at"] == "2025-10-13T00:59:00+01:00"  # the cohort's time zone, offset included
    assert (cy["auto_score"], cy["override"], cy["final_score"]) == ("4.5", "9", "9")
    assert cy["override_note"] == "by prof: regraded by hand, see email"
    assert (dee["final_score"], dee["submitted_at"], dee["error"]) == ("", "", "not submitted")
    assert by_id["fay"]["error"].startswith("the notebook is not valid JSON")
    assert by_id["ada"]["late"] == "no"


def test_plain_csv_defuses_spreadsheet_formulas_in_text():
    from dataclasses import replace

    view = sample_view(extra_students=0)
    evil = replace(view.students[3], name="=HYPERLINK(\"http://evil\")")
    view = replace(view, students=(*view.students[:3], evil, *view.students[4:]))
    row = next(r for r in csv.DictReader(io.StringIO(plain_csv(view))) if r["student_id"] == evil.id)
    assert row["name"] == "'=HYPERLINK(\"http://evil\")"


def test_gradescope_results_one_file_per_submission_with_final_score():
    view = sample_view()
    files = gradescope_results(view)
    graded = {g.student_id for g in view.grades}
    assert {str(p) for p in files} == {f"1.1/{s}/results.json" for s in graded}
    bob = json.loads(json.dumps(files[next(p for p in files if p.parts[1] == "bob")]))  # JSON-serialisable
    assert bob["score"] == 6.5 and bob["max_score"] == 10
    assert "1.5 point(s) taken off" in bob["output"]
    assert {t["status"] for t in bob["tests"]} == {"passed", "failed"}
    assert all(set(t) >= {"name", "score", "max_score", "status", "output", "visibility"} for t in bob["tests"])
    assert sum(t["score"] for t in bob["tests"]) == bob["extra_data"]["auto_score"] == 8
    failed = next(t for t in bob["tests"] if t["status"] == "failed")
    assert "worst element at index [0, 2]" in failed["output"]
    assert "expected 0.1" not in failed["output"]  # the reference value stays hidden, as on the feedback page
    cy = files[next(p for p in files if p.parts[1] == "cy")]
    assert cy["score"] == 9 and "regraded by hand" in cy["output"]
    assert not any(p.parts[1] == "dee" for p in files)


def test_gradescope_paths_cannot_escape_the_output_folder():
    from dataclasses import replace

    from autograder.reports.cohort_view import Student

    view = sample_view(extra_students=0)
    sneaky = Student("../../etc/x", "Sneaky")
    grade = replace(view.grades[0], student_id=sneaky.id)
    view = replace(view, students=(*view.students, sneaky), grades=(*view.grades, grade))
    paths = [p for p in gradescope_results(view) if "etc" in str(p)]
    assert paths and all(".." not in p.parts and not p.is_absolute() for p in paths)


def submission(name: str, softmax_ok: bool, error: str | None = None):
    from autograder.grade.results import ExerciseResult, SubmissionResult
    from autograder.grade.results import TestOutcome as Outcome  # not "Test*": pytest would collect it

    message = "" if softmax_ok else "softmax output: values differ from the expected ones (atol=0.0001, rtol=0.0001)."
    exercises = [] if error else [
        ExerciseResult("softmax", 4, [Outcome("softmax", "test_softmax", 4 if softmax_ok else 0, 4, softmax_ok,
                                              message, "passed" if softmax_ok else "wrong")]),
        ExerciseResult("scale", 6, [Outcome("scale", "test_scale", 6, 6, True)]),
    ]
    return SubmissionResult("0.1_toy", name, "0" * 64, "b" * 64, "1.0", "lite", "cpu", exercises, error=error)


def test_view_from_a_real_gradebook_applies_penalties_overrides_and_deadlines(tmp_path):
    """The adapter over an SQLite gradebook: recorded grades, a late penalty, an override, a stranger."""
    from datetime import datetime, timedelta, timezone

    from autograder.reports.cohort_view import AssignmentInfo, load_cohort_view
    from autograder.gradebook import open_gradebook, override_grade, record

    engine = open_gradebook(tmp_path / "book.sqlite")
    due = datetime(2025, 10, 10, 22, 59, tzinfo=timezone.utc)
    record(engine, submission("ada", True), cohort="fall25", student="ada", submitted_at=due - timedelta(hours=2))
    record(engine, submission("bob", False), cohort="fall25", student="bob", submitted_at=due + timedelta(days=1),
           late_penalty=0.6)
    record(engine, submission("cy", False), cohort="fall25", student="cy", submitted_at=due + timedelta(hours=5))
    record(engine, submission("zed", True), cohort="fall25", student="zed", submitted_at=due)
    record(engine, submission("ada", False), cohort="spring26", student="ada", submitted_at=due)  # another cohort
    override_grade(engine, "fall25", "0.1_toy", "cy", 9.5, "prof", "the test was wrong for cy's valid approach")
    roster = [{"id": "ada", "name": "Ada", "email": "ada@x.edu"}, {"id": "bob", "name": "Bob", "email": "b@x.edu"},
              {"id": "cy", "name": "Cy", "email": "cy@x.edu", "sis_id": "SIS-3"},
              {"id": "dee", "name": "Dee", "email": "d@x.edu"}]
    info = AssignmentInfo("0.1_toy", "Toy", 10, due=due)
    extended = {"cy": due + timedelta(days=1)}
    view = load_cohort_view(engine, "fall25", roster, [info], timezone="Europe/London",
                            deadline=lambda student, assignment: extended.get(student, due))

    ada, bob, cy = (view.grade(s, "0.1_toy") for s in ("ada", "bob", "cy"))
    assert (ada.final_score, ada.late, ada.exercises[0].full_marks) == (10, False, True)
    assert (bob.auto_score, bob.late_penalty, bob.final_score, bob.late) == (6, 0.6, 5.4, True)
    assert bob.exercises[0].failures == ("softmax output: values differ from the expected ones "
                                         "(atol=0.0001, rtol=0.0001).",)
    assert (cy.auto_score, cy.override, cy.final_score) == (6, 9.5, 9.5)
    assert cy.override_note == "prof: the test was wrong for cy's valid approach"
    assert cy.late is False and view.time_late(cy) is None  # within cy's extension
    assert view.grade("dee", "0.1_toy") is None and [s.id for s in view.not_submitted("0.1_toy")] == ["dee"]
    assert view.unmatched == ("0.1_toy/zed",)
    assert view.student("cy").sis_user_id == "SIS-3"

    by_sis = {r[2]: r[-1] for r in rows(canvas_csv(view))[2:]}
    assert by_sis == {"ada": "10", "bob": "5.4", "SIS-3": "9.5", "dee": ""}


def test_cli_export_grades_and_report_from_a_cohort_file(tmp_path, capsys):
    """`autograder export grades` and `autograder report` on a course with a cohort file and a gradebook."""
    import shutil
    from datetime import datetime, timedelta, timezone

    from autograder.cli import main as cli
    from autograder.gradebook import open_gradebook, override_grade, record
    from conftest import TOY_COURSE

    shutil.copytree(TOY_COURSE / "source", tmp_path / "source")
    cohorts = tmp_path / "instructors" / "cohorts"
    cohorts.mkdir(parents=True)
    (cohorts / "roster.csv").write_text("id,name,email,canvas_id,sis_id\n"
                                        "ada,Ada Lovelace,ada@x.edu,101,2001\nbob,Bob Byte,bob@x.edu,102,2002\n"
                                        "dee,Dee Nosub,dee@x.edu,104,2004\n", encoding="utf-8")
    (cohorts / "fall25.toml").write_text(
        '[cohort]\ntimezone = "Europe/London"\nseed = 1\nroster = "roster.csv"\n'
        "[late_policy]\ngrace_minutes = 15\npenalty_per_day = 0.1\n"
        '[[assignments]]\nid = "0.1"\nopens = "2025-10-01 09:00"\ndue = "2025-10-10 23:59"\n', encoding="utf-8")
    due = datetime(2025, 10, 10, 22, 59, tzinfo=timezone.utc)  # 23:59 in London (BST)
    db = tmp_path / "book.sqlite"
    engine = open_gradebook(db)
    record(engine, submission("ada", True), cohort="fall25", student="ada", submitted_at=due + timedelta(minutes=10))
    record(engine, submission("bob", False), cohort="fall25", student="bob", submitted_at=due + timedelta(hours=30),
           late_penalty=1.2)
    override_grade(engine, "fall25", "0.1_toy", "ada", 9, "prof", "plagiarism hearing outcome")
    base = ["--root", str(tmp_path)]

    assert cli([*base, "export", "grades", "--cohort", "fall25", "--format", "canvas", "--out",
                str(tmp_path / "canvas.csv"), "--db", str(db)]) == 0
    header, points, *students = rows((tmp_path / "canvas.csv").read_text(encoding="utf-8"))
    assert header == [*CANVAS_STUDENT_COLUMNS, "Toy assignment for the grader's own tests"]
    assert points[-1] == "10"
    assert students == [["Ada Lovelace", "101", "2001", "ada@x.edu", "", "9"],
                        ["Bob Byte", "102", "2002", "bob@x.edu", "", "4.8"],
                        ["Dee Nosub", "104", "2004", "dee@x.edu", "", ""]]

    # As reports.md writes it: the assignment after --cohort (argparse alone refused it: "unrecognized arguments")
    assert cli([*base, "export", "grades", "--cohort", "fall25", "0.1", "--format", "csv", "--missing-as-zero",
                "--out", str(tmp_path / "grades.csv"), "--db", str(db)]) == 0
    table = {r["student_id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "grades.csv").read_text()))}
    assert table["ada"]["late"] == "no"  # 10 minutes after due, within the 15 minutes' grace
    assert (table["bob"]["late"], table["bob"]["final_score"], table["dee"]["final_score"]) == ("yes", "4.8", "0")
    assert table["ada"]["override_note"] == "prof: plagiarism hearing outcome"

    assert cli([*base, "export", "grades", "--cohort", "fall25", "--format", "gradescope", "--out",
                str(tmp_path / "gs"), "--db", str(db)]) == 0
    written = sorted(p.relative_to(tmp_path / "gs").as_posix() for p in (tmp_path / "gs").rglob("*.json"))
    assert written == ["0.1_toy/ada/results.json", "0.1_toy/bob/results.json"]
    assert json.loads((tmp_path / "gs" / "0.1_toy" / "bob" / "results.json").read_text())["score"] == 4.8

    assert cli([*base, "report", "--cohort", "fall25", "--out", str(tmp_path / "report.html"), "--db", str(db)]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h3>Late submissions</h3>" in page and "Dee Nosub" in page and page.count("data:image/png") == 2

    assert cli([*base, "export", "grades", "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 2
    assert "needs --cohort NAME" in capsys.readouterr().err
    assert cli([*base, "export", "nbgrader", "0.1"]) == 2  # the other tools still need their folder
