"""``assignment.toml``: what an assignment is, how it is graded, what it needs.

The file is the single place for grading policy (exercises and points,
tolerances, limits, assets). Cell-level facts (which cell holds which exercise)
live in the notebook's cell metadata, next to the code they describe.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grade.limits import Limits


class AssignmentError(ValueError):
    """``assignment.toml`` or the notebook is inconsistent; the message says how to fix it."""


@dataclass(frozen=True)
class Exercise:
    name: str
    points: float
    description: str = ""
    hint: str = ""  # shown to a student who lost points on it (feedback.html)
    show_expected: bool = False  # let feedback show the reference's values where a check quotes them


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    source_dir: Path
    notebook: str
    exercises: tuple[Exercise, ...]
    support_files: tuple[str, ...] = ()
    hidden_tests: tuple[str, ...] = ("tests/test_*.py",)
    free_points: float = 0.0
    gpu: str = "optional"  # "required" | "preferred" | "optional"
    memory_estimate_mb: int = 2048
    limits: Limits = field(default_factory=Limits)
    submission_timeout_s: float = 600.0
    tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)
    assets: dict[str, dict] = field(default_factory=dict)
    seed: int = 0

    @property
    def max_score(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def notebook_stem(self) -> str:
        return Path(self.notebook).stem

    def exercise(self, name: str) -> Exercise:
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)


_GPU_CHOICES = {"required", "preferred", "optional"}


def load_assignment(source_dir: Path) -> Assignment:
    """Read ``source_dir/assignment.toml`` and check it."""
    path = source_dir / "assignment.toml"
    if not path.exists():
        raise AssignmentError(f"{source_dir}: no assignment.toml")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AssignmentError(f"{path}: {exc}") from exc

    meta = data.get("assignment", {})
    exercises = []
    for i, raw in enumerate(data.get("exercises", [])):
        if "name" not in raw or "points" not in raw:
            raise AssignmentError(f"{path}: exercises[{i}] needs a name and points")
        unknown = sorted(set(raw) - {"name", "points", "description", "hint", "show_expected"})
        if unknown:
            raise AssignmentError(
                f"{path}: exercises[{i}] has unknown key(s) {unknown}; "
                "an exercise takes name, points, description, hint and show_expected"
            )
        exercises.append(Exercise(
            str(raw["name"]), float(raw["points"]), str(raw.get("description", "")), str(raw.get("hint", "")),
            bool(raw.get("show_expected", False)),
        ))
    names = [e.name for e in exercises]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise AssignmentError(f"{path}: exercise names must be unique; repeated: {sorted(duplicates)}")
    if not exercises:
        raise AssignmentError(f"{path}: declare at least one [[exercises]] entry")

    gpu = str(meta.get("gpu", "optional"))
    if gpu not in _GPU_CHOICES:
        raise AssignmentError(f"{path}: gpu must be one of {sorted(_GPU_CHOICES)}, not {gpu!r}")

    raw_limits = data.get("limits", {})
    known_limits = set(Limits.__dataclass_fields__)
    unknown = set(raw_limits) - known_limits - {"submission_timeout_s"}
    if unknown:
        raise AssignmentError(f"{path}: unknown [limits] keys {sorted(unknown)}; known: {sorted(known_limits)}")
    limits = Limits(**{k: v for k, v in raw_limits.items() if k in known_limits})

    tolerances = {
        str(dtype): (float(spec["atol"]), float(spec["rtol"]))
        for dtype, spec in data.get("tolerances", {}).items()
    }
    notebook = str(meta.get("notebook", f"{source_dir.name}.py"))
    if not (source_dir / notebook).exists():
        raise AssignmentError(f"{path}: notebook {notebook!r} not found in {source_dir}")
    return Assignment(
        id=str(meta.get("id", source_dir.name)),
        title=str(meta.get("title", source_dir.name)),
        source_dir=source_dir,
        notebook=notebook,
        exercises=tuple(exercises),
        support_files=tuple(meta.get("support_files", ())),
        hidden_tests=tuple(meta.get("hidden_tests", ("tests/test_*.py",))),
        free_points=float(meta.get("free_points", 0.0)),
        gpu=gpu,
        memory_estimate_mb=int(meta.get("memory_estimate_mb", 2048)),
        limits=limits,
        submission_timeout_s=float(raw_limits.get("submission_timeout_s", 600.0)),
        tolerances=tolerances,
        assets=dict(data.get("assets", {})),
        seed=int(meta.get("seed", 0)),
    )


def discover_assignments(source_root: Path) -> list[Assignment]:
    """Every ``source/<id>/assignment.toml``, sorted by id."""
    return sorted(
        (load_assignment(p.parent) for p in source_root.glob("*/assignment.toml")),
        key=lambda a: a.id,
    )


def find_assignment(source_root: Path, name: str) -> Assignment:
    """Look an assignment up by id, folder name, or unique prefix (``1.1``)."""
    assignments = discover_assignments(source_root)
    exact = [a for a in assignments if name in (a.id, a.source_dir.name)]
    if exact:
        return exact[0]
    prefixed = [a for a in assignments if a.id.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    known = ", ".join(a.id for a in assignments) or "none"
    if prefixed:
        raise AssignmentError(f"{name!r} matches several assignments: {', '.join(a.id for a in prefixed)}")
    raise AssignmentError(f"no assignment {name!r} under {source_root} (known: {known})")
