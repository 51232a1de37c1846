"""Where things live in a course repository.

    source/<id>/     instructor material (notebook, assignment.toml, hidden tests)
    release/<id>/    generated student material, committed
    build/bundles/   generated grading bundles, git-ignored
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CourseLayout:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> "CourseLayout":
        """The course root: $AUTOGRADER_ROOT, or the nearest directory above ``start`` with a source/ folder."""
        if os.environ.get("AUTOGRADER_ROOT"):
            return cls(Path(os.environ["AUTOGRADER_ROOT"]).resolve())
        here = (start or Path.cwd()).resolve()
        for candidate in [here, *here.parents]:
            if (candidate / "source").is_dir():
                return cls(candidate)
        raise FileNotFoundError(
            f"no course found at or above {here}: expected a directory with a source/ folder "
            "(or set AUTOGRADER_ROOT)"
        )

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def bundles(self) -> Path:
        return self.root / "build" / "bundles"

    @property
    def intake(self) -> Path:
        """Where ``autograder collect`` stores a cohort's files: ``submissions/<cohort>/<assignment>/<student>/``."""
        return self.root / "submissions"

    def collected_cohort(self, path: Path) -> str | None:
        """The cohort whose collected copy ``path`` is (its folder under :attr:`intake` names a cohort), if any."""
        try:
            cohort = path.resolve().relative_to(self.intake.resolve()).parts[0]
        except (ValueError, IndexError):
            return None
        return cohort if (self.root / "instructors" / "cohorts" / f"{cohort}.toml").is_file() else None

    @property
    def default_gradebook(self) -> Path:
        return self.root / "gradebook.sqlite"
