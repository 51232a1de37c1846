"""The gradebook on SQLite and on a real PostgreSQL server: schema and migrations, grades, intake, overrides, and
several processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from autograder.grade.results import ExerciseResult, SubmissionResult
from autograder.grade.results import TestOutcome as Outcome  # not collected as a test class
from autograder.gradebook import (
    Base,
    GradebookError,
    IntakeItem,
    audit_trail,
    database_url,
    final_grades,
    final_score,
    grades_for,
    graded_versions,
    intake_for,
    open_gradebook,
    override_grade,
    record,
    record_intake,
)
from autograder.gradebook.store import _sqlite_pragmas, alembic_config
from pg_server import postgres_server

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def postgres():
    yield from postgres_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request, tmp_path) -> str:
    """A new, empty gradebook's path (SQLite) or URL (a fresh database on the test PostgreSQL server)."""
    if request.param == "sqlite":
        return str(tmp_path / "book.sqlite")
    return request.getfixturevalue("postgres").fresh_database()


@pytest.fixture
def engine(engine_url):
    engine = open_gradebook(engine_url)
    yield engine
    engine.dispose()  # PostgreSQL: hand the connections back before the server stops


def result(submission: str, test_scores: list[float], assignment: str = "0.1", sha: str = "sha",
           fingerprint: str | None = None) -> SubmissionResult:
    exercise = ExerciseResult("ex", 10 * len(test_scores), [
        Outcome("ex", f"case {i}", s, 10, s == 10, output=f"case {i}") for i, s in enumerate(test_scores)
    ])
    if fingerprint is not None:  # ExerciseResult gains the field in issue 6; record reads it where present
        exercise.fingerprint = fingerprint
    return SubmissionResult(assignment, submission, sha, "bundle", "0.1.0", "lite", "cpu", exercises=[exercise])


def test_database_url():
    assert database_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(GradebookError, match="SQLite .* or PostgreSQL .*, not mysql"):
        open_gradebook("mysql://u@h/db")
    assert database_url("rel/book.sqlite").startswith("sqlite:////") and database_url("rel/book.sqlite").endswith(
        "/rel/book.sqlite")


def test_migrated_schema_is_the_models_schema(engine):
    """The migrations (what databases get) and schema.py (what the code reads and writes) describe one schema."""
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar_one() == HEAD
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_regrade_replaces_the_grade_within_its_cohort(engine):
    submitted = datetime(2025, 3, 1, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    record(engine, result("alice", [0, 0]))
    record(engine, result("alice", [10, 10, 0], sha="v2", fingerprint="f" * 64),
           cohort="2025", student="s001", submitted_at=submitted, late_penalty=1.5)
    record(engine, result("alice", [10, 10], sha="v3"))  # plain grading again: replaces cohort "" only

    rows = grades_for(engine, "0.1")
    assert [(r.cohort, r.submission, r.score) for r in rows] == [("", "alice", 20), ("2025", "alice", 20)]
    plain, cohort = rows
    assert [t.score for t in plain.tests] == [10, 10] and plain.submission_sha256 == "v3"
    assert (plain.student, plain.submitted_at, plain.late_penalty) == (None, None, 0)
    assert [t.score for t in cohort.tests] == [10, 10, 0]
    assert cohort.student == "s001" and cohort.late_penalty == 1.5
    assert cohort.submitted_at == submitted and cohort.submitted_at.tzinfo is not None
    assert [(e.exercise, e.score, e.fingerprint) for e in cohort.exercises] == [("ex", 20, "f" * 64)]
    assert plain.exercises[0].fingerprint is None  # no fingerprint given

    assert [r.cohort for r in grades_for(engine, "0.1", cohort="2025")] == ["2025"]
    assert graded_versions(engine, "0.1") == {"alice": ("v3", "bundle")}
    assert graded_versions(engine, "0.1", cohort="2025") == {"alice": ("v2", "bundle")}
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from test_results")).scalar_one() == 5  # old children are gone


def test_bad_grade_inputs_are_refused(engine):
    with pytest.raises(GradebookError, match="timezone-aware"):
        record(engine, result("alice", [10]), submitted_at=datetime(2025, 3, 1, 10, 30))
    with pytest.raises(GradebookError, match="cannot be negative"):
        record(engine, result("alice", [10]), late_penalty=-1)
    assert grades_for(engine, "0.1") == []


def intake_item(student: str, sha: str, at: datetime, name: str = "nb.ipynb") -> IntakeItem:
    return IntakeItem("2025", "0.1", student, f"/store/{student}/{sha}.ipynb", sha, at, "canvas", name)


def test_intake_keeps_everything_once(engine):
    items = [intake_item("bob", "b1", T0 + timedelta(hours=1)), intake_item("alice", "a2", T0 + timedelta(hours=2)),
             intake_item("alice", "a1", T0)]
    assert record_intake(engine, items) == 3
    # The same download again, one time given in another zone: the same instant, so nothing new.
    again = [*items[:2], intake_item("alice", "a1", T0.astimezone(ZoneInfo("America/New_York")))]
    assert record_intake(engine, again) == 0
    # A resubmission of the same bytes later is a new row: the log keeps every hand-in.
    assert record_intake(engine, [intake_item("bob", "b1", T0 + timedelta(days=1))]) == 1

    got = intake_for(engine, "2025", "0.1")
    assert [(i.student, i.sha256, i.submitted_at) for i in got] == [
        ("alice", "a1", T0), ("alice", "a2", T0 + timedelta(hours=2)),
        ("bob", "b1", T0 + timedelta(hours=1)), ("bob", "b1", T0 + timedelta(days=1)),
    ]
    assert got[0] == items[2]  # every field comes back as written
    assert intake_for(engine, "2025", "0.1", student="bob") == got[2:]
    assert intake_for(engine, "2024", "0.1") == []


def test_intake_refuses_what_it_cannot_keep(engine):
    with pytest.raises(GradebookError, match="timezone-aware"):
        record_intake(engine, [intake_item("bob", "b1", datetime(2025, 3, 1))])
    with pytest.raises(GradebookError, match="not one of folder, canvas, gradescope"):
        record_intake(engine, [IntakeItem("2025", "0.1", "bob", "/p", "b1", T0, "moodle", "nb.ipynb")])
    assert intake_for(engine, "2025", "0.1") == []


def test_final_score_rule():
    assert final_score(8, 1.5, None) == 6.5
    assert final_score(1, 3, None) == 0  # a penalty never takes the grade below zero
    assert final_score(1, 3, 9.5) == 9.5  # an override is the grade, penalty or not
    assert final_score(1, 3, 0.0) == 0.0  # an override of zero is an override, not "none"


def test_overrides_keep_an_audit_trail_and_decide_the_final_grade(engine):
    record(engine, result("s001-nb", [10, 10, 0]), cohort="2025", student="s001", late_penalty=4)
    record(engine, result("s002-nb", [10, 10, 10]), cohort="2025", student="s002")
    record(engine, result("carol", [0, 0]))  # plain grading: the student is the submission's name

    def finals(cohort="2025"):
        return {g.student: (g.final_score, g.override, g.override_author) for g in final_grades(engine, cohort)}

    assert finals() == {"s001": (16, None, None), "s002": (30, None, None)}
    override_grade(engine, "2025", "0.1", "s001", 25, "Prof. Ada", "test case 2 was wrong; full marks for it")
    override_grade(engine, "2025", "0.1", "s001", 28, "Dr. Bo", "late penalty waived: medical note")
    assert finals()["s001"] == (28, 28, "Dr. Bo")
    override_grade(engine, "2025", "0.1", "s001", None, "Prof. Ada", "medical note withdrawn")
    assert finals()["s001"] == (16, None, None)
    override_grade(engine, "", "0.1", "carol", 5, "Prof. Ada", "partial credit for the approach")
    assert finals("") == {"carol": (5, 5, "Prof. Ada")}

    grade = next(g for g in final_grades(engine, "2025", "0.1") if g.student == "s001")
    assert (grade.submission, grade.auto_score, grade.max_score, grade.late_penalty) == ("s001-nb", 20, 30, 4)

    trail = audit_trail(engine, "2025")
    assert [(o.student, o.score, o.author) for o in trail] == [
        ("s001", 25, "Prof. Ada"), ("s001", 28, "Dr. Bo"), ("s001", None, "Prof. Ada")]
    assert trail[1].reason == "late penalty waived: medical note" and trail[1].created_at.tzinfo is not None
    assert audit_trail(engine, "2025", "0.1", "s002") == [] and len(audit_trail(engine, "", "0.1", "carol")) == 1


@pytest.mark.parametrize("score, author, reason, message", [
    (31, "Prof. Ada", "bonus", r"outside 0\.\.30"),
    (-1, "Prof. Ada", "penalty", r"outside 0\.\.30"),
    (float("nan"), "Prof. Ada", "?", r"outside 0\.\.30"),
    (10, "  ", "bonus", "needs its author"),
    (10, "Prof. Ada", "", "needs a reason"),
])
def test_bad_overrides_are_refused(engine, score, author, reason, message):
    record(engine, result("s001-nb", [10, 10, 10]), cohort="2025", student="s001")
    with pytest.raises(GradebookError, match=message):
        override_grade(engine, "2025", "0.1", "s001", score, author, reason)
    assert audit_trail(engine, "2025") == []


def test_only_an_override_in_force_can_be_cleared(engine):
    record(engine, result("s001-nb", [10, 10, 10]), cohort="2025", student="s001")
    with pytest.raises(GradebookError, match="no override of '0.1' in force .*nothing to clear"):
        override_grade(engine, "2025", "0.1", "s001", None, "Prof. Ada", "tidying up")
    override_grade(engine, "2025", "0.1", "s001", 25, "Prof. Ada", "regrade by hand")
    override_grade(engine, "2025", "0.1", "s001", None, "Prof. Ada", "the autograder was right")
    with pytest.raises(GradebookError, match="nothing to clear"):
        override_grade(engine, "2025", "0.1", "s001", None, "Prof. Ada", "twice")
    assert [o.score for o in audit_trail(engine, "2025")] == [25, None]


def test_override_needs_a_grade_and_the_database_needs_a_reason(engine):
    with pytest.raises(GradebookError, match="'s404' has no grade for '0.1' in cohort '2025'"):
        override_grade(engine, "2025", "0.1", "s404", 5, "Prof. Ada", "typo in roster")
    with pytest.raises(IntegrityError), engine.begin() as conn:  # even a hand-written insert cannot skip it
        conn.execute(text("insert into grade_overrides (cohort, assignment, student, score, author, reason, "
                          "created_at) values ('2025', '0.1', 's001', 1, 'x', '', :t)"), {"t": T0})


class OldBase(DeclarativeBase):
    pass


class OldSubmission(OldBase):
    """The tables as ``autograder/gradebook.py`` created them before migrations (create_all, no alembic)."""
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("assignment", "submission", name="one_grade_per_submission"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment: Mapped[str] = mapped_column(String(200), index=True)
    submission: Mapped[str] = mapped_column(String(500))
    submission_sha256: Mapped[str] = mapped_column(String(64))
    bundle_hash: Mapped[str] = mapped_column(String(64))
    grader_version: Mapped[str] = mapped_column(String(50))
    profile: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    execution_time: Mapped[float] = mapped_column(Float)
    feedback: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    graded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OldExercise(OldBase):
    __tablename__ = "exercise_scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    exercise: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)


class OldTest(OldBase):
    __tablename__ = "test_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    exercise: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(20))
    output: Mapped[str] = mapped_column(Text, default="")


def test_a_gradebook_from_before_migrations_is_upgraded_with_its_rows(engine_url):
    old = create_engine(database_url(engine_url))
    OldBase.metadata.create_all(old)
    with old.begin() as conn:
        for i, name in enumerate(["alice", "bob"], start=1):
            grade_id = conn.execute(insert(OldSubmission).returning(OldSubmission.id), [dict(
                assignment="0.1", submission=name, submission_sha256=f"sha-{name}", bundle_hash="b",
                grader_version="0.0.9", profile="lite", device="cpu", score=7 * i, max_score=20,
                execution_time=1.0, feedback="", error=None, graded_at=T0)]).scalar_one()
            conn.execute(insert(OldExercise), [dict(submission_id=grade_id, exercise="ex", score=7 * i, max_score=20)])
            conn.execute(insert(OldTest), [dict(submission_id=grade_id, exercise="ex", name=f"case {j}", score=3.5 * i,
                                                max_score=10, status="failed", reason="wrong", output="")
                                           for j in range(2)])
    old.dispose()

    engine = open_gradebook(engine_url)
    try:
        rows = grades_for(engine, "0.1")
        assert [(r.cohort, r.submission, r.score, r.late_penalty) for r in rows] == [("", "alice", 7, 0),
                                                                                  ("", "bob", 14, 0)]
        # SQLite rebuilds the submissions table to change its unique constraint; the children must survive it.
        assert [[t.score for t in r.tests] for r in rows] == [[3.5, 3.5], [7, 7]]
        assert [[e.score for e in r.exercises] for r in rows] == [[7], [14]]
        assert graded_versions(engine, "0.1") == {"alice": ("sha-alice", "b"), "bob": ("sha-bob", "b")}
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar_one() == HEAD
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        record(engine, result("alice", [10, 10]), cohort="2025", student="s001")  # the new key works
        record(engine, result("alice", [10, 10]))  # and a regrade of an old row replaces it
        assert [(r.cohort, r.submission, r.score) for r in grades_for(engine, "0.1")] == [
            ("", "alice", 20), ("", "bob", 14), ("2025", "alice", 20)]
    finally:
        engine.dispose()


def test_a_gradebook_from_a_newer_autograder_is_refused(tmp_path):
    open_gradebook(tmp_path / "book.sqlite").dispose()
    with create_engine(database_url(tmp_path / "book.sqlite")).begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    with pytest.raises(GradebookError, match="revision '9999', which this autograder does not know"):
        open_gradebook(tmp_path / "book.sqlite")


def _open_and_write(path: str, start) -> None:
    start.wait()
    conn = sqlite3.connect(path)
    _sqlite_pragmas(conn, None)
    conn.execute("create table if not exists t (x)")
    conn.execute("insert into t values (1)")
    conn.commit()
    conn.close()


def test_processes_opening_a_new_sqlite_gradebook_at_once_all_get_in(tmp_path):
    """The switch to WAL mode is reported busy at once, not through the busy timeout, when another process
    is switching at the same moment; before the retry, about 1 round in 10 of these lost a process
    ("database is locked"), and a CI run lost a grading worker that way."""
    context = multiprocessing.get_context("fork")
    for round_ in range(30):
        path = str(tmp_path / f"book{round_}.sqlite")
        start = context.Barrier(8)
        openers = [context.Process(target=_open_and_write, args=(path, start)) for _ in range(8)]
        for p in openers:
            p.start()
        for p in openers:
            p.join(60)
        assert [p.exitcode for p in openers] == [0] * 8, f"round {round_}"
        with sqlite3.connect(path) as conn:
            assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
            assert conn.execute("select count(*) from t").fetchone()[0] == 8


WRITERS, WRITES, SUBMISSIONS = 4, 20, 10


def _writer(url: str, worker: int, start) -> None:
    """One grading process: opens the (new) gradebook with the others, then records, logs and overrides at once."""
    start.wait()
    engine = open_gradebook(url)
    for j in range(WRITES):
        tag = 100 * worker + j  # which write this was, readable from the row and from every child
        cases = 1 + (worker + j) % 3
        student = f"s{(j * 3 + worker) % SUBMISSIONS:02d}"
        record(engine, result(student, [tag] * cases, sha=str(tag)), cohort="2025", student=student)
        shared = [intake_item(f"s{k:02d}", f"sha{k}", T0) for k in range(j % 5, SUBMISSIONS)]  # everyone's
        own = [intake_item(f"w{worker}", f"own{j}", T0)] if j < 5 else []
        record_intake(engine, shared + own)
        if j % 4 == 0:
            override_grade(engine, "2025", "0.1", student, tag % 3, f"worker {worker}", f"write {j}")
    engine.dispose()


def test_concurrent_writers_lose_and_duplicate_nothing(engine_url):
    """4 processes × 20 grades over 10 submissions (each graded ~8 times, often at the same moment), with
    overlapping intake batches and overrides: every key holds exactly one consistent grade, nothing is lost."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS)
    workers = [context.Process(target=_writer, args=(engine_url, w, start)) for w in range(WRITERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0] * WRITERS

    engine = open_gradebook(engine_url)
    try:
        rows = grades_for(engine, "0.1", cohort="2025")
        assert sorted(r.submission for r in rows) == [f"s{k:02d}" for k in range(SUBMISSIONS)]
        written = {(100 * w + j, f"s{(j * 3 + w) % SUBMISSIONS:02d}", 1 + (w + j) % 3)
                   for w in range(WRITERS) for j in range(WRITES)}
        for row in rows:  # one write's values, whole: the row, its exercise and its tests all agree
            tag = int(row.submission_sha256)
            assert (tag, row.submission, len(row.tests)) in written
            assert [t.score for t in row.tests] == [tag] * len(row.tests) and row.score == tag * len(row.tests)
            assert [(e.exercise, e.score) for e in row.exercises] == [("ex", row.score)]
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from test_results")).scalar_one() == sum(
                len(r.tests) for r in rows)  # no orphans left by a replaced grade
        intake = intake_for(engine, "2025", "0.1")
        assert len(intake) == SUBMISSIONS + WRITERS * 5 == len({(i.student, i.sha256) for i in intake})
        trail = audit_trail(engine, "2025")
        assert len(trail) == WRITERS * 5
        assert sorted((o.author, o.reason) for o in trail) == sorted(
            (f"worker {w}", f"write {j}") for w in range(WRITERS) for j in range(0, WRITES, 4))
    finally:
        engine.dispose()


def test_cli_grades_the_toy_course_into_postgresql(postgres, toy_layout, toy_assignment, tmp_path, capsys):
    from autograder.build.samples import partial_submission, reference_submission
    from autograder.cli import main as cli
    from conftest import available_sandbox, write_notebook

    subs = tmp_path / "subs"
    subs.mkdir()
    write_notebook(subs / "alice.ipynb", reference_submission(toy_assignment))
    write_notebook(subs / "bob.ipynb", partial_submission(toy_assignment))
    url = postgres.fresh_database()
    args = ["--root", str(toy_layout.root), "grade", "0.1", str(subs), "--out", str(tmp_path / "out"), "--db", url]
    if available_sandbox() == "none":
        args.append("--no-sandbox")
    assert cli(args) == 0
    capsys.readouterr()
    assert cli(args) == 0  # resuming reads the recorded versions back from PostgreSQL
    assert "2 submission(s) already graded" in capsys.readouterr().err

    engine = open_gradebook(url)
    try:
        rows = grades_for(engine, toy_assignment.id)
        assert [(r.cohort, r.submission, r.score, r.max_score) for r in rows] == [("", "alice", 10, 10),
                                                                               ("", "bob", 4, 10)]
        assert {e.exercise: e.score for e in rows[0].exercises} == {"softmax": 4, "scale": 3, "double_scale": 3}
        assert len(rows[0].tests) == 4 and all(t.status == "passed" for t in rows[0].tests)
    finally:
        engine.dispose()
