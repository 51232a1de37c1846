"""The instructor's report on a cohort: one self-contained HTML page.

Per assignment: the score distribution (a histogram), each exercise's pass
rate (a table and a bar chart), the failure messages that come up most often
per exercise, late submissions, and students who have not submitted.

The page needs nothing but itself: CSS inline, plots as PNG data URLs drawn by
matplotlib's Agg backend, no scripts, no external URLs. Every string that comes
from a student (names, failure messages quoting their code's errors) is escaped.
"""

from __future__ import annotations

import base64
import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display, and no GUI toolkit imported
import matplotlib.pyplot as plt  # noqa: E402

from autograder.reports.cohort_view import AssignmentInfo, CohortView, StudentGrade  # noqa: E402

TOP_FAILURES = 3

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1.2rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.3rem; border-bottom: 2px solid #d0d7de;
padding-bottom: .3rem; margin-top: 2.5rem; } h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.meta { color: #59636e; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: .5rem .9rem; min-width: 7.5rem; }
.card .n { font-size: 1.35rem; font-weight: 600; } .card .l { color: #59636e; font-size: .85rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border-bottom: 1px solid #d8dee4; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .6rem 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.plots figure { margin: 0; } figcaption { color: #59636e; font-size: .85rem; }
.msg { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; white-space: pre-wrap;
       word-break: break-word; }
.empty { color: #59636e; font-style: italic; } .warn { color: #9a6700; }
.bar { display: inline-block; height: .7rem; background: #2da44e; border-radius: 2px; vertical-align: middle; }
"""

# A number as it appears in a message: an integer, a decimal, scientific notation, nan, inf.
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)(?![\w.])")
_DIMENSIONS = re.compile(r"\b\d+(?:x\d+)+\b")  # "10x16", as in PyTorch's shape errors
_SPACES = re.compile(r"\s+")


def failure_signature(message: str, limit: int = 200) -> str:
    """A failure message with what varies per student taken out, so that alike failures group together.

    Only the headline counts (a check's first line, or the exception line of an error): the lines after it
    are numbers and tracebacks that differ for everyone. Numbers become ``#``.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    headline = _NUMBER.sub("#", _DIMENSIONS.sub(lambda m: "x".join("#" * (m[0].count("x") + 1)), lines[0]))
    headline = _SPACES.sub(" ", headline)
    return headline if len(headline) <= limit else headline[: limit - 1] + "…"


@dataclass(frozen=True)
class ExerciseStats:
    name: str
    max_score: float
    graded: int  # submissions that reached the tests
    full_marks: int
    mean_score: float
    tests_passed: int
    tests_total: int
    common_failures: tuple[tuple[str, int], ...]  # (signature, how many submissions) most common first

    @property
    def pass_rate(self) -> float:
        return self.full_marks / self.graded if self.graded else 0.0


def exercise_stats(grades: list[StudentGrade], top: int = TOP_FAILURES) -> list[ExerciseStats]:
    """Per exercise, over the graded submissions: full-marks rate, mean score, and the commonest failures."""
    order: list[str] = []
    by_name: dict[str, list] = {}
    for g in grades:
        for ex in g.exercises:
            if ex.name not in by_name:
                order.append(ex.name)
                by_name[ex.name] = []
            by_name[ex.name].append(ex)
    stats = []
    for name in order:
        scores = by_name[name]
        failures: Counter[str] = Counter()
        for ex in scores:  # a submission counts once per signature, however many of its cases fail alike
            failures.update({failure_signature(m) for m in ex.failures})
        stats.append(ExerciseStats(
            name=name,
            max_score=max(e.max_score for e in scores),
            graded=len(scores),
            full_marks=sum(e.full_marks for e in scores),
            mean_score=statistics.mean(e.score for e in scores),
            tests_passed=sum(e.passed_tests for e in scores),
            tests_total=sum(e.total_tests for e in scores),
            common_failures=tuple(failures.most_common(top)),
        ))
    return stats


# --- plots ----------------------------------------------------------------------------------------------------------


def _png_data_url(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def score_histogram(scores: list[float], max_score: float, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    bins = min(20, max(5, int(max_score) if max_score >= 1 else 10))
    ax.hist(scores, bins=bins, range=(0, max_score or 1), color="#0969da", edgecolor="white")
    if scores:
        mean = statistics.mean(scores)
        ax.axvline(mean, color="#cf222e", linestyle="--", linewidth=1.2, label=f"mean {mean:.1f}")
        ax.legend(frameon=False, loc="upper left")
    ax.set_xlabel(f"final score (out of {max_score:g})")
    ax.set_ylabel("students")
    ax.set_title(title, fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    return _png_data_url(fig)


def pass_rate_chart(stats: list[ExerciseStats]) -> str:
    height = 0.9 + 0.32 * len(stats)
    fig, ax = plt.subplots(figsize=(5.6, height))
    names = [s.name for s in stats][::-1]
    rates = [100 * s.pass_rate for s in stats][::-1]
    colours = ["#2da44e" if r >= 80 else ("#d4a72c" if r >= 50 else "#cf222e") for r in rates]
    ax.barh(names, rates, color=colours)
    for y, r in enumerate(rates):
        ax.text(min(r + 1.5, 93), y, f"{r:.0f}%", va="center", fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("submissions with full marks (%)")
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png_data_url(fig)


# --- HTML -----------------------------------------------------------------------------------------------------------


def _when(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _card(number: str, label: str) -> str:
    return f'<div class="card"><div class="n">{escape(number)}</div><div class="l">{escape(label)}</div></div>'


def _assignment_section(view: CohortView, a: AssignmentInfo, tz: ZoneInfo) -> str:
    grades = view.grades_for(a.id)
    missing = view.not_submitted(a.id)
    late = [g for g in grades if g.late]
    ungradable = [g for g in grades if g.error]
    finals = [g.final_score for g in grades]
    out = [f'<section id="{escape(_anchor(a.id))}">',
           f'<h2>{escape(a.title)} <span class="meta">({escape(a.id)})</span></h2>',
           f'<p class="meta">Due {_when(a.due, tz)} · {a.max_score:g} points</p>', '<div class="cards">',
           _card(f"{len(grades)} / {len(view.students)}", "submitted"),
           _card(str(len(missing)), "not submitted"), _card(str(len(late)), "late")]
    if finals:
        out += [_card(f"{statistics.mean(finals):.1f}", "mean final score"),
                _card(f"{statistics.median(finals):g}", "median final score")]
    out.append("</div>")

    out.append("<h3>Score distribution</h3>")
    if finals:
        out.append(f'<img src="{score_histogram(finals, a.max_score, a.title)}" '
                   f'alt="Histogram of the final scores of {len(finals)} submission(s) of {escape(a.title)}">')
    else:
        out.append('<p class="empty">No submissions yet.</p>')

    stats = exercise_stats([g for g in grades if not g.error])
    out.append("<h3>Pass rate per exercise</h3>")
    if stats:
        rows = "".join(
            f"<tr><td>{escape(s.name)}</td><td class='num'>{s.max_score:g}</td>"
            f"<td class='num'>{s.full_marks} / {s.graded}</td>"
            f"<td class='num'>{100 * s.pass_rate:.0f}% <span class='bar' style='width:{3 * s.pass_rate:.2f}rem'>"
            f"</span></td><td class='num'>{s.mean_score:.2f}</td>"
            f"<td class='num'>{s.tests_passed} / {s.tests_total}</td></tr>"
            for s in stats
        )
        out.append('<div class="plots"><table><tr><th>exercise</th><th class="num">points</th>'
                   '<th class="num">full marks</th><th class="num">pass rate</th><th class="num">mean score</th>'
                   f'<th class="num">test cases passed</th></tr>{rows}</table>'
                   f'<figure><img src="{pass_rate_chart(stats)}" alt="Bar chart of the pass rate of each exercise">'
                   "<figcaption>Share of graded submissions with full marks on each exercise.</figcaption>"
                   "</figure></div>")
    else:
        out.append('<p class="empty">No graded submissions yet.</p>')

    out.append(f"<h3>Most common failures per exercise</h3>"
               f"<p class='meta'>Top {TOP_FAILURES} per exercise; numbers are replaced by # so that the same "
               "failure groups together; a submission counts once per message.</p>")
    failing = [s for s in stats if s.common_failures]
    if failing:
        out.append('<table><tr><th>exercise</th><th class="num">submissions</th><th>failure</th></tr>')
        for s in failing:
            for i, (message, count) in enumerate(s.common_failures):
                name = f'<td rowspan="{len(s.common_failures)}">{escape(s.name)}</td>' if i == 0 else ""
                out.append(f"<tr>{name}<td class='num'>{count}</td><td class='msg'>{escape(message)}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="empty">No failed tests.</p>')

    out.append("<h3>Late submissions</h3>")
    if late:
        out.append('<table><tr><th>student</th><th>name</th><th>submitted</th><th class="num">days late</th>'
                   '<th class="num">penalty</th><th class="num">final score</th></tr>')
        for g in sorted(late, key=lambda g: g.submitted_at or datetime.min.replace(tzinfo=timezone.utc)):
            delay = view.time_late(g)
            days = f"{delay.total_seconds() / 86400:.1f}" if delay else "—"
            out.append(f"<tr><td>{escape(g.student_id)}</td><td>{escape(view.student(g.student_id).name)}</td>"
                       f"<td>{_when(g.submitted_at, tz)}</td><td class='num'>{days}</td>"
                       f"<td class='num'>−{g.late_penalty:g}</td><td class='num'>{g.final_score:g}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="empty">No late submissions.</p>')

    out.append("<h3>Not submitted</h3>")
    if missing:
        out.append("<table><tr><th>student</th><th>name</th><th>email</th></tr>")
        out += [f"<tr><td>{escape(s.id)}</td><td>{escape(s.name)}</td><td>{escape(s.email)}</td></tr>"
                for s in missing]
        out.append("</table>")
    else:
        out.append('<p class="empty">Everyone on the roster has submitted.</p>')

    if ungradable:
        out.append("<h3 class='warn'>Submissions that could not be graded</h3><table>"
                   "<tr><th>student</th><th>why</th></tr>")
        out += [f"<tr><td>{escape(g.student_id)}</td><td class='msg'>{escape(failure_signature(g.error or ''))}"
                "</td></tr>" for g in ungradable]
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def _anchor(assignment_id: str) -> str:
    return "a-" + re.sub(r"[^A-Za-z0-9_-]", "-", assignment_id)


def instructor_report_html(view: CohortView, assignment: str | None = None,
                           generated_at: datetime | None = None) -> str:
    """The cohort's report, for one assignment or (by default) for each of the cohort's assignments."""
    tz = ZoneInfo(view.timezone)
    assignments = [view.assignment(assignment)] if assignment else list(view.assignments)
    generated_at = generated_at or datetime.now(timezone.utc)
    title = f"{view.cohort}: " + (assignments[0].title if assignment else "grades report")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Cohort {escape(view.cohort)} · {len(view.students)} student(s) on the roster · '
        f"generated {_when(generated_at, tz)}</p>",
    ]
    if len(assignments) > 1:
        parts.append("<nav><ul>" + "".join(
            f'<li><a href="#{escape(_anchor(a.id))}">{escape(a.title)}</a></li>' for a in assignments) + "</ul></nav>")
    if view.unmatched:
        parts.append("<p class='warn'>Graded submissions whose name matches no one on the roster (not counted "
                     "below; rename them after a roster id and grade again): "
                     + ", ".join(f"<code>{escape(n)}</code>" for n in view.unmatched) + "</p>")
    parts += [_assignment_section(view, a, tz) for a in assignments]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
