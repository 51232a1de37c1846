"""Build: compile every ``source/`` assignment into ``release/`` and a grading bundle."""

from __future__ import annotations

from dataclasses import dataclass, field

from autograder.authoring.assignment import Assignment, discover_assignments, find_assignment
from autograder.build.tree import diff_tree, write_tree

# compile (and the nbgrader preprocessors it uses, half a second to import) is imported where
# it is used: grading workers import autograder.build.tree and nothing else from here.
from autograder.layout import CourseLayout


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # with --check: how release/ differs


def build_course(layout: CourseLayout, check: bool = False, only: list[str] | None = None) -> BuildReport:
    """Compile every assignment (or those ``only`` names, by id prefix); write
    release/ and the bundles, or (``check``) only compare release/."""
    from autograder.build.compile import compile_assignment

    report = BuildReport()
    assignments = discover_assignments(layout.source)
    chosen = [find_assignment(layout.source, name) for name in only] if only else assignments
    for assignment in chosen:
        compiled = compile_assignment(assignment)
        release_dir = layout.release / assignment.id
        if check:
            report.stale += diff_tree(release_dir, compiled.release)
        else:
            write_tree(release_dir, compiled.release)
            write_tree(layout.bundles / assignment.id, compiled.bundle)
        report.built.append(assignment.id)
    if check and not only and layout.release.is_dir():
        known = {a.id for a in assignments}
        report.stale += [
            f"unexpected {p} (no source/{p.name}/assignment.toml)"
            for p in sorted(layout.release.iterdir())
            if p.is_dir() and p.name not in known
        ]
    return report


def ensure_bundle(layout: CourseLayout, assignment: Assignment) -> None:
    """Make the assignment's grading bundle match its source, rebuilding it if needed.

    Only the bundle is written: release/ is what the instructor commits, and
    changes to it go through ``autograder build``. A bundle compiled from these
    very inputs (its stamp says so) is kept without compiling again: compiling
    imports nbgrader, a second of every batch's start.
    """
    bundle_dir = layout.bundles / assignment.id
    stamp_path = layout.bundles / f"{assignment.id}.source-stamp"
    stamp = source_stamp(assignment)
    if bundle_dir.is_dir() and stamp_path.is_file() and stamp_path.read_text() == stamp:
        return  # load_bundle still checks every file against the manifest's hashes

    from autograder.build.compile import compile_assignment

    compiled = compile_assignment(assignment)
    if diff_tree(bundle_dir, compiled.bundle):
        write_tree(bundle_dir, compiled.bundle)
    stamp_path.write_text(stamp)


# What compile and the notebook readers import (see build/compile.py, authoring/): their
# versions are part of a bundle's stamp.
_COMPILER_LIBRARIES = ("nbgrader", "nbconvert", "nbformat", "jupytext", "traitlets")


def source_stamp(assignment: Assignment) -> str:
    """A hash of everything a compiled bundle depends on.

    That is the assignment's source folder, this package's code (the compiler and
    what it uses), and the installed libraries' versions (nbgrader, nbformat...):
    any change to one of them means compiling again.
    """
    import hashlib
    from importlib import metadata
    from pathlib import Path

    digest = hashlib.sha256()

    def add_tree(root: Path, pattern: str) -> None:
        for path in sorted(root.rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())

    add_tree(assignment.source_dir, "*")
    add_tree(Path(__file__).resolve().parents[1], "*.py")
    for library in _COMPILER_LIBRARIES:
        try:
            digest.update(f"{library}=={metadata.version(library)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} missing\n".encode())
    return digest.hexdigest()
