"""Intake: submissions from a folder, a Canvas zip or a Gradescope zip, mapped to the roster.

The parsers are pure: each turns its input into :class:`Received` files, each
either mapped to one roster student or carrying the reason it could not be.
Only :func:`store_received` and :func:`collect` touch the course: every
mapped file is *copied* (never moved, never overwritten) to

    <course root>/submissions/<cohort>/<assignment>/<student>/<UTC time>_<sha256[:8]><suffix>

and recorded in the gradebook. Every submission is kept; which one counts is
decided later, from the records (:func:`counted_submissions`).

Conventions read here:

- **Folder:** each ``.ipynb``/``.py`` file whose name holds a roster id, an
  email (or its local part) or a name; its time is the file's mtime.
- **Canvas** ("Download Submissions"): flat entries
  ``lastnamefirstname_<canvasUserId>_<submissionId>_<originalName>``, with
  ``_LATE_`` after the name for late work; a resubmission may add ``-1``,
  ``-2`` to the original name. Mapped by the roster's ``canvas_id`` column,
  else by the squashed name. Time: the entry's timestamp, in the cohort's
  timezone.
- **Gradescope** ("Export Submissions"):
  ``assignment_<n>_export/submission_<id>/<files>`` and
  ``submission_metadata.yml`` listing each submission's ``:submitters:``
  (``:name:``, ``:sid:``, ``:email:``) and ``:created_at:``. Mapped by sid
  (the roster's ``sis_id``, else ``id``), then email. A group submission
  goes to each of its submitters.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterable

import yaml

from autograder.cohort.config import Cohort, Student
from autograder.cohort.late import Lateness, choose_counted, late_penalty
from autograder.layout import CourseLayout

GRADABLE_SUFFIXES = (".ipynb", ".py")
SOURCES = ("folder", "canvas", "gradescope")


class CollectError(ValueError):
    """The input cannot be read as the format asked for; the message says why."""


@dataclass(frozen=True)
class Received:
    """One file handed in: where it came from, when, and whose it is (``student`` None: unmapped, see ``problem``)."""

    original_name: str
    data: bytes = field(repr=False)
    submitted_at: datetime
    source: str
    student: str | None
    problem: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# ---------------------------------------------------------------------- matching names to the roster


def squash(text: str) -> str:
    """Lowercase letters and digits only, accents dropped: ``"Zoë O'Brien"`` -> ``"zoeobrien"``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def _name_forms(name: str) -> set[str]:
    """A name squashed in every rotation of its words: "Ada King Lovelace" gives adakinglovelace,
    kinglovelaceada, lovelaceadaking (Canvas writes lastnamefirstname)."""
    words = [w for w in re.split(r"\s+", name.strip()) if w]
    return {squash("".join(words[i:] + words[:i])) for i in range(len(words))} - {""}


def _has_token(haystack: str, needle: str) -> bool:
    """``needle`` in ``haystack`` (both lowercase), not as part of a longer run of letters/digits."""
    if not needle:
        return False
    return re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack) is not None


def match_file_name(file_name: str, roster: Iterable[Student]) -> tuple[Student | None, str]:
    """The one student a folder file's path (below the folder collected) points at, by id, then email, then
    name; else why not."""
    roster = list(roster)
    stem = str(PurePosixPath(file_name).with_suffix("")).lower()  # folders count too: s0042/hw1.ipynb
    squashed = squash(stem)
    tiers = (
        ("roster id", lambda s: _has_token(stem, s.id.lower())),
        ("email", lambda s: bool(s.email) and (
            _has_token(stem, s.email.lower()) or _has_token(stem, s.email.lower().split("@")[0])
        )),
        ("name", lambda s: any(form in squashed for form in _name_forms(s.name))),
    )
    for what, matches in tiers:
        found = [s for s in roster if matches(s)]
        if len(found) == 1:
            return found[0], ""
        if len(found) > 1:
            return None, f"ambiguous: its name matches the {what} of {', '.join(s.id for s in found)}"
    return None, "no roster id, email or name in the file's path"


# ---------------------------------------------------------------------- a folder


def read_folder(folder: Path, cohort: Cohort) -> list[Received]:
    """Every ``.ipynb``/``.py`` under ``folder`` (hidden files and checkpoints skipped); time = mtime."""
    if not folder.is_dir():
        raise CollectError(f"{folder} is not a folder")
    received = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or path.suffix.lower() not in GRADABLE_SUFFIXES:
            continue
        if any(part.startswith(".") or part in ("__pycache__", ".ipynb_checkpoints") for part in rel.parts):
            continue
        student, problem = match_file_name(rel.as_posix(), cohort.roster)  # one folder per student counts
        received.append(Received(
            original_name=rel.as_posix(), data=path.read_bytes(),
            submitted_at=datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc),
            source="folder", student=student.id if student else None, problem=problem,
        ))
    return received


# ---------------------------------------------------------------------- Canvas


CANVAS_ENTRY = re.compile(
    r"^(?P<name>[^_]+)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+)$", re.IGNORECASE
)


@dataclass(frozen=True)
class CanvasEntry:
    squashed_name: str
    late: bool
    canvas_user_id: str
    submission_id: str
    original_name: str


def parse_canvas_name(entry_name: str) -> CanvasEntry | None:
    """``lastnamefirstname[_LATE]_<user>_<submission>_<original>``, or None if the name does not follow it."""
    m = CANVAS_ENTRY.match(PurePosixPath(entry_name).name)
    if not m:
        return None
    return CanvasEntry(
        squashed_name=squash(m["name"]), late=bool(m["late"]), canvas_user_id=m["user"],
        submission_id=m["submission"], original_name=m["original"],
    )


def read_canvas_zip(zip_path: Path, cohort: Cohort) -> list[Received]:
    received = []
    by_canvas_id = {s.canvas_id: s for s in cohort.roster if s.canvas_id}
    with _open_zip(zip_path) as archive:
        for info in _file_entries(archive):
            entry = parse_canvas_name(info.filename)
            when = datetime(*info.date_time, tzinfo=cohort.timezone)
            student, problem = None, ""
            if entry is None:
                problem = ("name does not follow Canvas's lastnamefirstname_<userid>_<submissionid>_<file> "
                           "(was the zip renamed or repacked?)")
            elif entry.canvas_user_id in by_canvas_id:
                student = by_canvas_id[entry.canvas_user_id]
            else:
                named = [s for s in cohort.roster if entry.squashed_name in _name_forms(s.name)]
                if len(named) == 1:
                    student = named[0]
                elif named:
                    problem = (f"Canvas user {entry.canvas_user_id} ({entry.squashed_name}) matches the names of "
                               f"{', '.join(s.id for s in named)}; add a canvas_id column to the roster")
                else:
                    problem = (f"Canvas user {entry.canvas_user_id} ({entry.squashed_name}) matches no roster "
                               f"canvas_id or name")
            received.append(Received(
                original_name=info.filename, data=archive.read(info), submitted_at=when, source="canvas",
                student=student.id if student else None, problem=problem,
            ))
    return received


# ---------------------------------------------------------------------- Gradescope


GRADESCOPE_METADATA = "submission_metadata.yml"
GRADESCOPE_TOP = re.compile(r"^assignment_\d+_export/")


def read_gradescope_zip(zip_path: Path, cohort: Cohort) -> list[Received]:
    with _open_zip(zip_path) as archive:
        entries = _file_entries(archive)
        metadata_entries = sorted(
            (i for i in entries if PurePosixPath(i.filename).name == GRADESCOPE_METADATA),
            key=lambda i: i.filename.count("/"),
        )
        if not metadata_entries:
            raise CollectError(
                f"{zip_path}: no {GRADESCOPE_METADATA} in the zip; use the zip from Gradescope's "
                f"'Export Submissions', unchanged"
            )
        base = PurePosixPath(metadata_entries[0].filename).parent
        try:
            metadata = yaml.safe_load(archive.read(metadata_entries[0])) or {}
        except yaml.YAMLError as exc:
            raise CollectError(f"{zip_path}: {metadata_entries[0].filename} is not valid YAML: {exc}") from exc
        if not isinstance(metadata, dict):
            raise CollectError(f"{zip_path}: {metadata_entries[0].filename} should map submission_<id> to details")
        received = []
        for info in entries:
            if info is metadata_entries[0]:
                continue
            path = PurePosixPath(info.filename)
            try:
                folder = path.relative_to(base).parts[0]
            except (ValueError, IndexError):
                folder = ""
            details = metadata.get(folder) if folder.startswith("submission_") else None
            data = archive.read(info)
            if not isinstance(details, dict):
                why = (f"{folder} is not listed in {GRADESCOPE_METADATA}" if folder.startswith("submission_")
                       else "not inside a submission_<id>/ folder of the export")
                received.append(_unmapped(info.filename, data, _zip_time(info, cohort), "gradescope", why))
                continue
            when = _gradescope_time(details.get(":created_at"), cohort) or _zip_time(info, cohort)
            submitters = details.get(":submitters") or []
            if not submitters:
                received.append(_unmapped(info.filename, data, when, "gradescope", f"{folder} lists no submitters"))
            for person in submitters:
                student, problem = _gradescope_student(person, cohort.roster)
                received.append(Received(
                    original_name=info.filename, data=data, submitted_at=when, source="gradescope",
                    student=student.id if student else None, problem=problem,
                ))
    return received


def _gradescope_student(person: object, roster: tuple[Student, ...]) -> tuple[Student | None, str]:
    if not isinstance(person, dict):
        return None, f"unreadable submitter entry {person!r}"
    sid = str(person.get(":sid") or "").strip()
    email = str(person.get(":email") or "").strip().lower()
    name = str(person.get(":name") or "").strip()
    if sid:
        by_sid = [s for s in roster if (s.sis_id or s.id) == sid]
        if len(by_sid) == 1:
            return by_sid[0], ""
    if email:
        by_email = [s for s in roster if s.email.lower() == email]
        if len(by_email) == 1:
            return by_email[0], ""
    return None, f"submitter {name or '?'} (sid {sid or '-'}, email {email or '-'}) is not in the roster"


_GRADESCOPE_TIME = re.compile(
    r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|UTC|[+-]\d\d:?\d\d)?$"
)


def _gradescope_time(value: object, cohort: Cohort) -> datetime | None:
    """``:created_at:`` as YAML gave it: a datetime, or a string such as ``2026-09-21 22:03:11.48 -0700``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # YAML gives offset-less times in UTC
    if not isinstance(value, str):
        return None
    m = _GRADESCOPE_TIME.match(value.strip())
    if not m:
        return None
    date, clock, fraction, offset = m.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    if offset in (None, ""):
        tail, tz = "", cohort.timezone
    elif offset in ("Z", "UTC"):
        tail, tz = "+00:00", None
    else:
        tail, tz = offset if ":" in offset else f"{offset[:3]}:{offset[3:]}", None
    moment = datetime.fromisoformat(f"{date}T{clock}.{micro}{tail}")
    return moment.replace(tzinfo=tz) if tz else moment


# ---------------------------------------------------------------------- zips and format detection


def detect_format(path: Path) -> str:
    """``folder``, ``gradescope`` (has submission_metadata.yml or assignment_<n>_export/) or ``canvas``."""
    if path.is_dir():
        return "folder"
    with _open_zip(path) as archive:
        names = archive.namelist()
    if any(PurePosixPath(n).name == GRADESCOPE_METADATA or GRADESCOPE_TOP.match(n) for n in names):
        return "gradescope"
    return "canvas"


def read_submissions(path: Path, cohort: Cohort, fmt: str = "auto") -> tuple[str, list[Received]]:
    """The format used and the files read from ``path``."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {"folder": read_folder, "canvas": read_canvas_zip, "gradescope": read_gradescope_zip}
    if fmt not in readers:
        raise CollectError(f"unknown format {fmt!r}; expected auto, {', '.join(readers)}")
    return fmt, readers[fmt](path, cohort)


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise CollectError(f"{path}: no such file or folder")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CollectError(f"{path} is neither a folder nor a zip file") from None


def _file_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Files only, without the clutter archivers add (__MACOSX/, .DS_Store)."""
    return [
        i for i in archive.infolist()
        if not i.is_dir() and not i.filename.startswith("__MACOSX/") and PurePosixPath(i.filename).name != ".DS_Store"
    ]


def _zip_time(info: zipfile.ZipInfo, cohort: Cohort) -> datetime:
    return datetime(*info.date_time, tzinfo=cohort.timezone)


def _unmapped(name: str, data: bytes, when: datetime, source: str, why: str) -> Received:
    return Received(original_name=name, data=data, submitted_at=when, source=source, student=None, problem=why)


# ---------------------------------------------------------------------- storage and records


def stored_file_name(submitted_at: datetime, sha256: str, original_name: str) -> str:
    """``<UTC time>_<sha256[:8]><suffix>``, e.g. ``20260921T225900Z_1a2b3c4d.ipynb``."""
    suffix = PurePosixPath(original_name).suffix.lower()
    return f"{submitted_at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}_{sha256[:8]}{suffix}"


def store_received(course_root: Path, cohort: str, assignment: str, received: Received) -> Path:
    """Copy one mapped file into the submissions tree; never overwrites (the same bytes again are left as they are)."""
    if received.student is None:
        raise ValueError(f"{received.original_name} is not mapped to a student: {received.problem}")
    folder = CourseLayout(course_root).intake / cohort / assignment / received.student
    target = folder / stored_file_name(received.submitted_at, received.sha256, received.original_name)
    if target.exists():
        if hashlib.sha256(target.read_bytes()).hexdigest() != received.sha256:
            raise CollectError(
                f"{target} already exists with other content (a sha256 prefix collision); "
                f"move it aside and collect again"
            )
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".incoming-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(received.data)
        stamp = received.submitted_at.timestamp()
        os.utime(staging, (stamp, stamp))
        os.link(staging, target)  # fails rather than replace a file that appeared meanwhile
    except FileExistsError:
        pass  # another collect stored the same bytes at the same time: identical by name
    finally:
        os.unlink(staging)
    return target


@dataclass
class CollectReport:
    fmt: str
    received: list[Received]
    stored: list  # IntakeItem, one per mapped file
    newly_recorded: int

    @property
    def unmapped(self) -> list[Received]:
        return [r for r in self.received if r.student is None]


def collect(engine, course_root: Path, cohort: Cohort, assignment: str, path: Path, fmt: str = "auto") -> CollectReport:
    """Read ``path``, store every mapped file and record it; unmapped files are in the report, never dropped."""
    from autograder.gradebook import IntakeItem, record_intake

    fmt, received = read_submissions(path, cohort, fmt)
    items = []
    for r in received:
        if r.student is None:
            continue
        stored = store_received(course_root, cohort.name, assignment, r)
        items.append(IntakeItem(
            cohort=cohort.name, assignment=assignment, student=r.student, stored_path=str(stored),
            sha256=r.sha256, submitted_at=r.submitted_at, source=r.source, original_name=r.original_name,
        ))
    newly = record_intake(engine, items) if items else 0
    return CollectReport(fmt=fmt, received=received, stored=items, newly_recorded=newly)


# ---------------------------------------------------------------------- what counts, for grading


@dataclass(frozen=True)
class CountedSubmission:
    student: str
    path: Path
    submitted_at: datetime
    lateness: Lateness
    files_received: int = 1
    original_name: str = ""  # as handed in (the stored name is <UTC time>_<sha>)


def counted_submissions(engine, cohort: Cohort, assignment: str) -> list[CountedSubmission]:
    """Per student, the gradable file that counts under the cohort's late policy, with its penalty.

    Only ``.ipynb``/``.py`` files compete (a stray PDF never displaces a
    notebook). Sorted by student id.
    """
    from autograder.gradebook import intake_for

    by_student: dict[str, list] = {}
    for item in intake_for(engine, cohort.name, assignment):
        by_student.setdefault(item.student, []).append(item)
    counted = []
    for student, items in sorted(by_student.items()):
        gradable = [i for i in items if PurePosixPath(str(i.stored_path)).suffix.lower() in GRADABLE_SUFFIXES]
        due = cohort.assignment(assignment).due
        extension = cohort.extension_due(student, assignment)
        timed = [_Timed(_aware(i.submitted_at), i) for i in gradable]
        chosen = choose_counted(timed, extension or due, cohort.late_policy)
        if chosen is None:
            continue
        counted.append(CountedSubmission(
            student=student, path=Path(chosen.item.stored_path), submitted_at=chosen.submitted_at,
            lateness=late_penalty(chosen.submitted_at, due, cohort.late_policy, extension), files_received=len(items),
            original_name=chosen.item.original_name,
        ))
    return counted


@dataclass(frozen=True)
class _Timed:
    submitted_at: datetime
    item: object


def _aware(moment: datetime) -> datetime:
    """Times come back from SQLite without their offset; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def missing_students(engine, cohort: Cohort, assignment: str) -> list[Student]:
    """Roster students with no gradable submission recorded for ``assignment``."""
    have = {c.student for c in counted_submissions(engine, cohort, assignment)}
    return [s for s in cohort.roster if s.id not in have]
