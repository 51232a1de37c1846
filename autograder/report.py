"""Showing grading results to a person: a score table per batch."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from autograder.grade.results import SubmissionResult


def score_table(results: list[SubmissionResult]) -> Table:
    """Submissions as rows, exercises as columns, the total last."""
    table = Table(title=f"{results[0].assignment}: {len(results)} submission(s)" if results else "no submissions")
    if not results:
        return table
    names = [e.name for e in results[0].exercises]
    table.add_column("submission", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right", style="bold")
    table.add_column("time", justify="right")
    for res in results:
        cells = []
        for name in names:
            try:
                ex = res.exercise(name)
            except KeyError:
                cells.append("-")
                continue
            colour = "green" if ex.score >= ex.max_score else ("yellow" if ex.score > 0 else "red")
            cells.append(f"[{colour}]{ex.score:g}/{ex.max_score:g}[/{colour}]")
        table.add_row(
            res.submission, *cells, f"{res.score:g}/{res.max_score:g}", f"{res.execution_time:.1f}s"
        )
    return table


def print_summary(results: list[SubmissionResult], console: Console | None = None) -> None:
    console = console or Console()
    console.print(score_table(results))
    for res in results:
        if res.error:
            console.print(f"[red]{res.submission}[/red]: {res.error}")
