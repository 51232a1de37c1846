"""A cohort: ``instructors/cohorts/<name>.toml`` and the roster CSV it names.

The file says who is in the cohort, which assignments they get and when, how
late work is penalised, and the cohort's seed. Everything is checked on load,
and every error names the file, the key and what was expected, so an
instructor can fix the file without reading this code.

Dates in the file are wall-clock times in the cohort's timezone; they are held
as timezone-aware datetimes, so arithmetic on them is in real elapsed time.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COUNTS_CHOICES = ("latest_on_time", "latest")
REQUIRED_ROSTER_COLUMNS = ("id", "name", "email")
OPTIONAL_ROSTER_COLUMNS = ("canvas_id", "sis_id")
DATE_FORMAT_HINT = '"YYYY-MM-DD HH:MM" (local to [cohort] timezone), e.g. "2026-09-21 23:59"'


class CohortError(ValueError):
    """A cohort file or its roster is wrong; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    email: str
    canvas_id: str = ""
    sis_id: str = ""


@dataclass(frozen=True)
class LatePolicy:
    grace_minutes: float = 0.0
    penalty_per_day: float = 0.0  # fraction of the earned score, per started day after due + grace
    max_penalty: float = 1.0  # cap on the total fraction
    counts: str = "latest_on_time"  # or "latest"


@dataclass(frozen=True)
class CohortAssignment:
    id: str  # the course's assignment id (resolved from the prefix written in the file, when the course is known)
    opens: datetime
    due: datetime


@dataclass(frozen=True)
class Cohort:
    name: str
    path: Path
    timezone: ZoneInfo
    seed: int
    roster: tuple[Student, ...]
    late_policy: LatePolicy
    assignments: tuple[CohortAssignment, ...]
    extensions: dict[str, dict[str, datetime]] = field(default_factory=dict)  # student id -> assignment id -> due

    def student(self, student_id: str) -> Student:
        for s in self.roster:
            if s.id == student_id:
                return s
        raise KeyError(student_id)

    def assignment(self, name: str) -> CohortAssignment:
        """The cohort's assignment called ``name``: its id, or a unique prefix of it."""
        exact = [a for a in self.assignments if a.id == name]
        if exact:
            return exact[0]
        prefixed = [a for a in self.assignments if a.id.startswith(name)]
        if len(prefixed) == 1:
            return prefixed[0]
        ids = ", ".join(a.id for a in self.assignments) or "none"
        if prefixed:
            raise CohortError(f"{name!r} matches several of cohort {self.name}'s assignments: {ids}")
        raise CohortError(
            f"assignment {name!r} is not in cohort {self.name} ({self.path}); its assignments: {ids}. "
            f"Add an [[assignments]] entry for it there first."
        )

    def extension_due(self, student_id: str, assignment_id: str) -> datetime | None:
        return self.extensions.get(student_id, {}).get(assignment_id)

    def due_for(self, student_id: str, assignment_id: str) -> datetime:
        """The student's own deadline: their extension if they have one, else the cohort's."""
        return self.extension_due(student_id, assignment_id) or self.assignment(assignment_id).due


def cohorts_dir(course_root: Path) -> Path:
    return course_root / "instructors" / "cohorts"


def load_cohort(course_root: Path, name: str, known_assignments: list[str] | None = None) -> Cohort:
    """``<course root>/instructors/cohorts/<name>.toml``, checked (see :func:`read_cohort`)."""
    folder = cohorts_dir(course_root)
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise CohortError(
            f"no cohort {name!r}: expected the file {path} "
            f"(known cohorts: {', '.join(known) or 'none'}; see instructors/cohorts.md)"
        )
    return read_cohort(path, known_assignments)


def read_cohort(path: Path, known_assignments: list[str] | None = None) -> Cohort:
    """Read and check a cohort file. With ``known_assignments`` (the course's assignment
    ids), each ``[[assignments]].id`` and extension key is resolved to one of them."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CohortError(f"{path}: not valid TOML: {exc}") from exc
    _only_keys(path, "top level", data, {"cohort", "late_policy", "assignments", "extensions"})

    meta = _table(path, data, "cohort")
    _only_keys(path, "[cohort]", meta, {"timezone", "seed", "roster"})
    tz = _timezone(path, meta)
    seed = meta.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise CohortError(f"{path}: [cohort] seed must be an integer (e.g. seed = 20260907), not {seed!r}")
    if not isinstance(meta.get("roster"), str):
        raise CohortError(f'{path}: [cohort] roster must be the path of a CSV file, e.g. roster = "roster.csv"')
    try:
        roster = read_roster(path.parent / meta["roster"])
    except CohortError as exc:
        raise CohortError(f"{path}: [cohort] roster = {meta['roster']!r}: {exc}") from None

    policy = _late_policy(path, data.get("late_policy", {}))
    assignments = _assignments(path, data.get("assignments"), tz, known_assignments)
    extensions = _extensions(path, data.get("extensions", {}), tz, roster, assignments, known_assignments)
    return Cohort(
        name=path.stem, path=path, timezone=tz, seed=seed, roster=roster, late_policy=policy,
        assignments=assignments, extensions=extensions,
    )


def read_roster(path: Path) -> tuple[Student, ...]:
    """The roster CSV: one student a row, columns id, name, email (optional: canvas_id, sis_id)."""
    if not path.is_file():
        raise CohortError(f"no file {path}; expected a CSV with columns {', '.join(REQUIRED_ROSTER_COLUMNS)}")
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets often start with a BOM
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_ROSTER_COLUMNS if c not in columns]
        if missing:
            raise CohortError(
                f"{path}: roster is missing the column(s) {', '.join(missing)}; its header must include "
                f"{', '.join(REQUIRED_ROSTER_COLUMNS)} (optional: {', '.join(OPTIONAL_ROSTER_COLUMNS)}), "
                f"found: {', '.join(columns) or 'nothing'}"
            )
        students: list[Student] = []
        lines: list[int] = []
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue  # a blank line
            if not row["id"]:
                raise CohortError(f"{path}, line {line}: empty id; every student needs an id")
            students.append(Student(
                id=row["id"], name=row["name"], email=row["email"],
                canvas_id=row.get("canvas_id", ""), sis_id=row.get("sis_id", ""),
            ))
            lines.append(line)
    for column in ("id", "email", "canvas_id", "sis_id"):
        _no_duplicates(path, students, lines, column)
    return tuple(students)


# ---------------------------------------------------------------------- parts of the file


def _no_duplicates(path: Path, students: list[Student], lines: list[int], column: str) -> None:
    seen: dict[str, int] = {}
    for s, line in zip(students, lines):
        value = getattr(s, column)
        key = value.lower() if column == "email" else value
        if not key:
            continue
        if key in seen:
            raise CohortError(
                f"{path}: duplicate {column} {value!r} on lines {seen[key]} and {line}; "
                f"each {column} must appear once, since files are matched to students by it"
            )
        seen[key] = line


def _timezone(path: Path, meta: dict) -> ZoneInfo:
    name = meta.get("timezone")
    if not isinstance(name, str) or not name:
        raise CohortError(f'{path}: [cohort] timezone is required: an IANA name such as "Europe/London"')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CohortError(
            f'{path}: [cohort] timezone {name!r} is not a known timezone; expected an IANA name such as '
            f'"Europe/London" or "America/New_York"'
        ) from None


def _late_policy(path: Path, raw: object) -> LatePolicy:
    if not isinstance(raw, dict):
        raise CohortError(f"{path}: [late_policy] must be a table")
    _only_keys(path, "[late_policy]", raw, set(LatePolicy.__dataclass_fields__))
    defaults = LatePolicy()
    values = {}
    for key, low, high in (("grace_minutes", 0, None), ("penalty_per_day", 0, 1), ("max_penalty", 0, 1)):
        value = raw.get(key, getattr(defaults, key))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low or (
            high is not None and value > high
        ):
            expected = f"a number from {low} to {high} (a fraction of the score)" if high else "a number >= 0"
            raise CohortError(f"{path}: [late_policy] {key} must be {expected}, not {value!r}")
        values[key] = float(value)
    counts = raw.get("counts", defaults.counts)
    if counts not in COUNTS_CHOICES:
        raise CohortError(
            f"{path}: [late_policy] counts must be one of {', '.join(repr(c) for c in COUNTS_CHOICES)}, not {counts!r}"
        )
    return LatePolicy(counts=counts, **values)


def _assignments(
    path: Path, raw: object, tz: ZoneInfo, known: list[str] | None
) -> tuple[CohortAssignment, ...]:
    if not isinstance(raw, list) or not raw:
        raise CohortError(
            f'{path}: declare at least one [[assignments]] entry, with id, opens and due '
            f'(id = "1.1", opens = "2026-09-07 09:00", due = "2026-09-21 23:59")'
        )
    out: list[CohortAssignment] = []
    for i, entry in enumerate(raw):
        where = f"assignments[{i}]"
        if not isinstance(entry, dict):
            raise CohortError(f"{path}: {where} must be a table with id, opens and due")
        _only_keys(path, where, entry, {"id", "opens", "due"})
        for key in ("id", "opens", "due"):
            if key not in entry:
                raise CohortError(f"{path}: {where} has no {key}; each assignment needs id, opens and due")
        written = str(entry["id"])
        assignment_id = _resolve_assignment(path, f"{where}.id", written, known)
        opens = _local_datetime(path, f"{where}.opens ({written})", entry["opens"], tz)
        due = _local_datetime(path, f"{where}.due ({written})", entry["due"], tz)
        if due <= opens:
            raise CohortError(
                f"{path}: {where} ({written}): due {entry['due']} is not after opens {entry['opens']}; "
                f"the due date must come after the opening date"
            )
        if any(a.id == assignment_id for a in out):
            raise CohortError(f"{path}: {where}: assignment {assignment_id} is listed twice")
        out.append(CohortAssignment(assignment_id, opens, due))
    return tuple(out)


def _extensions(
    path: Path, raw: object, tz: ZoneInfo, roster: tuple[Student, ...],
    assignments: tuple[CohortAssignment, ...], known: list[str] | None,
) -> dict[str, dict[str, datetime]]:
    if not isinstance(raw, dict):
        raise CohortError(f"{path}: [extensions] must be a table: student id = {{ assignment = new due date }}")
    ids = {s.id for s in roster}
    out: dict[str, dict[str, datetime]] = {}
    for student_id, per_assignment in raw.items():
        if student_id not in ids:
            raise CohortError(
                f"{path}: [extensions] {student_id}: no student with id {student_id!r} in the roster; "
                f"use an id from the roster's id column"
            )
        if not isinstance(per_assignment, dict):
            raise CohortError(
                f'{path}: [extensions] {student_id} must be a table such as {{ "1.1" = "2026-09-24 23:59" }}'
            )
        for written, when in per_assignment.items():
            key = f"[extensions] {student_id}.{written}"
            matches = [a for a in assignments if a.id == written] or [
                a for a in assignments if a.id.startswith(written)
            ]
            if known is not None and not matches:
                resolved = _resolve_assignment(path, key, written, known)
                matches = [a for a in assignments if a.id == resolved]
            if len(matches) != 1:
                raise CohortError(
                    f"{path}: {key}: {written!r} names "
                    f"{'several' if matches else 'none'} of this cohort's assignments "
                    f"({', '.join(a.id for a in assignments)}); use one of their ids"
                )
            target = matches[0]
            due = _local_datetime(path, key, when, tz)
            if due < target.due:
                raise CohortError(
                    f"{path}: {key}: the extended due date {when} is before the cohort's due date; "
                    f"an extension must be on or after {target.due:%Y-%m-%d %H:%M}"
                )
            out.setdefault(student_id, {})[target.id] = due
    return out


def _resolve_assignment(path: Path, key: str, written: str, known: list[str] | None) -> str:
    if known is None:
        return written
    if written in known:
        return written
    prefixed = [k for k in known if k.startswith(written)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise CohortError(f"{path}: {key}: {written!r} matches several assignments ({', '.join(prefixed)}); write more of the id")
    raise CohortError(
        f"{path}: {key}: no assignment {written!r} in this course (known: {', '.join(known) or 'none'})"
    )


def _local_datetime(path: Path, key: str, value: object, tz: ZoneInfo) -> datetime:
    """A wall-clock time in the cohort's timezone, refused if it does not exist there (clocks going forward)."""
    if isinstance(value, datetime):  # a bare TOML local date-time
        naive = value
        if naive.tzinfo is not None:
            raise CohortError(f"{path}: {key}: write the date without an offset, as {DATE_FORMAT_HINT}")
    elif isinstance(value, str):
        try:
            naive = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            raise CohortError(f"{path}: {key}: {value!r} is not a date; expected {DATE_FORMAT_HINT}") from None
    else:
        raise CohortError(f"{path}: {key}: expected {DATE_FORMAT_HINT}, not {value!r}")
    local = naive.replace(tzinfo=tz)
    round_trip = local.astimezone(timezone.utc).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:
        raise CohortError(
            f"{path}: {key}: {naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks go forward then); "
            f"pick another time"
        )
    return local


def _table(path: Path, data: dict, name: str) -> dict:
    table = data.get(name)
    if not isinstance(table, dict):
        raise CohortError(f"{path}: missing the [{name}] table (timezone, seed, roster); see instructors/cohorts.md")
    return table


def _only_keys(path: Path, where: str, table: dict, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CohortError(f"{path}: {where}: unknown key(s) {', '.join(unknown)}; expected: {', '.join(sorted(allowed))}")
