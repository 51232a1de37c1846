"""Grading results, and their Gradescope ``results.json`` form."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TestOutcome:
    exercise: str
    name: str
    score: float
    max_score: float
    passed: bool
    output: str = ""
    reason: str = "passed"  # passed | wrong | error | timeout | crash | not_attempted | skipped
    duration_s: float = 0.0  # inside the test function (student code it calls included), not our set-up around it
    setup_s: float = 0.0  # in the test's fixtures (the reference's expected values, computed once per batch)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"


@dataclass
class ExerciseResult:
    name: str
    max_score: float
    tests: list[TestOutcome] = field(default_factory=list)
    fingerprint: str = ""  # what graded it (autograder.grade.fingerprint): a test fix regrades only what it changes

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 6)


@dataclass
class SubmissionResult:
    assignment: str
    submission: str
    submission_sha256: str
    bundle_hash: str
    grader_version: str
    profile: str
    device: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    output: str = ""
    execution_time: float = 0.0
    free_points: float = 0.0
    error: str | None = None  # set when the submission could not be graded at all
    sandbox: str = "bwrap"  # "none" when graded with --no-sandbox
    # exercise -> what the section's public checks printed for this submission (student-side, never graded)
    public_output: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return round(self.free_points + sum(e.score for e in self.exercises), 6)

    @property
    def max_score(self) -> float:
        return round(self.free_points + sum(e.max_score for e in self.exercises), 6)

    def exercise(self, name: str) -> ExerciseResult:
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)

    def to_gradescope(self) -> dict:
        """Gradescope's results.json schema, with our extras under ``extra_data``."""
        return {
            "score": self.score,
            "max_score": self.max_score,
            "execution_time": round(self.execution_time, 3),
            "output": self.output,
            "visibility": "visible",
            "tests": [
                {
                    "name": f"{t.exercise}: {t.name}",
                    "score": round(t.score, 6),
                    "max_score": round(t.max_score, 6),
                    "status": t.status,
                    "output": t.output,
                    "visibility": "visible",
                    "extra_data": {"exercise": t.exercise, "reason": t.reason, "duration_s": round(t.duration_s, 4),
                                   "setup_s": round(t.setup_s, 4)},
                }
                for ex in self.exercises
                for t in ex.tests
            ],
            "extra_data": {
                "assignment": self.assignment,
                "submission": self.submission,
                "submission_sha256": self.submission_sha256,
                "bundle_hash": self.bundle_hash,
                "grader_version": self.grader_version,
                "profile": self.profile,
                "device": self.device,
                "sandbox": self.sandbox,
                "exercises": {
                    ex.name: {"score": ex.score, "max_score": ex.max_score, "fingerprint": ex.fingerprint}
                    for ex in self.exercises
                },
                "error": self.error,
                "public_output": self.public_output,
            },
        }


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a reader (or a crash) never sees half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def remove_stale_temporaries(out: Path, names: tuple[str, ...] = ("results.json", "feedback.html")) -> int:
    """Delete what :func:`write_text_atomic` left half-written when a run was killed mid-write."""
    removed = 0
    for name in names:
        for stale in out.glob(f"*/.{name}.*"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import (before any thread starts): os.umask can only be read by setting it.
_NEW_FILE_MODE = 0o666 & ~_umask()


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside ``path``, then rename over it: readers see the old file or the new one, never half.

    The file gets the mode any new file would (mkstemp's is 0600): feedback pages and reports are meant to be
    handed on, served or mailed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _NEW_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:  # UTF-8 whatever the locale: names keep accents
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
