"""Showing grading results to a person: one row per submission, then batch statistics.

Rows stay readable at any terminal width and any number of exercises: instead
of a column per exercise, each row names the exercises that lost points.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autograder.grade.results import SubmissionResult


def score_table(results: list[SubmissionResult], penalties: Mapping[str, float] | None = None) -> Table:
    """``penalties``: submission -> late penalty in points (a cohort's grading), shown beside the score."""
    table = Table(title=f"{results[0].assignment}: {len(results)} submission(s)" if results else "no submissions")
    if not results:
        return table
    table.add_column("submission", style="bold", overflow="fold")
    table.add_column("score", justify="right")
    if penalties is not None:
        table.add_column("late penalty", justify="right")
    table.add_column("time", justify="right")
    table.add_column("points lost in", overflow="fold")
    for res in results:
        full = res.max_score > 0 and res.score >= res.max_score
        colour = "green" if full else ("yellow" if res.score > 0 else "red")
        lost = [f"{e.name} ({e.score:g}/{e.max_score:g})" for e in res.exercises if e.score < e.max_score]
        penalty = [] if penalties is None else [f"-{penalties[res.submission]:g}" if penalties.get(res.submission) else "-"]
        table.add_row(
            escape(res.submission),  # a file name: the student's choice, not markup
            f"[{colour}]{res.score:g}/{res.max_score:g}[/{colour}]",
            *penalty,
            f"{res.execution_time:.1f}s",
            escape(res.error or ", ".join(lost) or "-"),
        )
    return table


def batch_statistics(results: list[SubmissionResult], slowest: int = 3) -> list[str]:
    """Count, mean and median score, failing tests by reason, the slowest submissions."""
    if not results:
        return []
    scores = [r.score for r in results]
    lines = [
        f"{len(results)} submission(s): mean {statistics.mean(scores):.1f}, median {statistics.median(scores):g} "
        f"(out of {results[0].max_score:g})"
    ]
    reasons = Counter(t.reason for r in results for e in r.exercises for t in e.tests if not t.passed)
    ungradable = sum(1 for r in results if r.error)
    if ungradable:
        reasons["ungradable submission"] = ungradable
    if reasons:
        lines.append("failed tests by reason: " + ", ".join(f"{why} {n}" for why, n in reasons.most_common()))
    by_time = sorted(results, key=lambda r: r.execution_time, reverse=True)[:slowest]
    lines.append("slowest: " + ", ".join(f"{r.submission} {r.execution_time:.1f}s" for r in by_time))
    return lines


def print_summary(results: list[SubmissionResult], console: Console | None = None,
                  penalties: Mapping[str, float] | None = None) -> None:
    console = console or Console()
    console.print(score_table(results, penalties))
    for line in batch_statistics(results):
        console.print(escape(line))
    if penalties:
        late = [p for p in penalties.values() if p]
        if late:
            console.print(f"late: {len(late)} submission(s), {sum(late):g} point(s) taken off in all "
                          "(the scores above are before the penalty)")
    for res in results:
        if res.error:
            console.print(f"[red]{escape(res.submission)}[/red]: {escape(res.error)}")
