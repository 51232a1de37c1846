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
    changes to it go through ``autograder build``.
    """
    from autograder.build.compile import compile_assignment

    compiled = compile_assignment(assignment)
    bundle_dir = layout.bundles / assignment.id
    if diff_tree(bundle_dir, compiled.bundle):
        write_tree(bundle_dir, compiled.bundle)
