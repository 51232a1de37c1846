"""The instructor's report: every section, escaped, self-contained, and rendered cleanly by real headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.reports.instructor import exercise_stats, failure_signature, instructor_report_html
from cohort_samples import HOSTILE_NAME, sample_view
from conftest import REPO

GENERATED = datetime(2025, 10, 20, 9, 0, tzinfo=timezone.utc)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def section(page: str, heading: str) -> str:
    """The HTML from an <h3> heading to the next heading."""
    start = page.index(f"<h3>{heading}</h3>")
    following = re.search(r"<h[23]", page[start + 4:])
    return page[start: start + 4 + following.start()] if following else page[start:]


@pytest.fixture(scope="module")
def page() -> str:
    return instructor_report_html(sample_view(), generated_at=GENERATED)


def test_failure_signatures_group_what_differs_only_in_numbers():
    a = "softmax output: values differ (atol=0.0001, rtol=1e-05).\n  max abs error: 0.31\n  worst element [0, 2]"
    b = "softmax output: values differ (atol=0.0001, rtol=1e-05).\n  max abs error: 12.5\n  worst element [1, 0]"
    assert failure_signature(a) == failure_signature(b) == "softmax output: values differ (atol=#, rtol=#)."
    assert failure_signature("shapes cannot be multiplied (10x16 and 32x8)") == \
        failure_signature("shapes cannot be multiplied (10x8 and 16x8)")
    assert failure_signature("wrong shape. Expected (2, 5), got (2, 4).") != failure_signature("wrong dtype.")


def test_exercise_stats_count_full_marks_and_commonest_failures():
    view = sample_view(extra_students=0)
    stats = {s.name: s for s in exercise_stats([g for g in view.grades if not g.error])}
    # ada, bob, cy, eve graded: softmax full marks only for ada; cy fails it twice alike, counted once.
    assert (stats["softmax"].full_marks, stats["softmax"].graded) == (1, 4)
    assert stats["softmax"].common_failures[0] == (
        "softmax output: values differ from the expected ones (atol=#, rtol=#).", 2)
    assert stats["attention"].common_failures == (("attention output: wrong shape. Expected (#, #, #), got (#, #, #).",
                                                   2),)
    assert stats["mlp"].pass_rate == 1.0 and stats["mlp"].common_failures == ()


def test_report_has_every_section(page):
    for heading in ("Score distribution", "Pass rate per exercise", "Most common failures per exercise",
                    "Late submissions", "Not submitted"):
        assert f"<h3>{heading}</h3>" in page, heading
    images = [attrs for tag, attrs in tags(page) if tag == "img"]
    assert len(images) == 2 and all(i["src"].startswith("data:image/png;base64,") and i["alt"] for i in images)
    for image in images:
        assert base64.b64decode(image["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    late = section(page, "Late submissions")
    assert "bob" in late and "2025-10-13 00:59 BST" in late and "2.0" in late and "−1.5" in late
    assert "ada" not in late
    missing = section(page, "Not submitted")
    assert "dee@example.edu" in missing and "s06" in missing and "bob" not in missing
    failures = section(page, "Most common failures per exercise")
    assert "wrong shape. Expected (#, #, #), got (#, #, #)." in failures
    rates = section(page, "Pass rate per exercise")
    assert re.search(r"<td>mlp</td>.*?full marks|<td>mlp</td>", rates)
    assert "zed_final_v2" in page  # a submission matching no roster entry is named, not silently dropped
    assert "Submissions that could not be graded" in page and "fay" in page


def test_report_escapes_student_strings_and_is_self_contained(page):
    assert HOSTILE_NAME not in page and "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Eve &amp; &quot;Mallory&quot;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(#)&gt;" in page
    assert not re.search(r"(?:src|href)=\"(?:https?:|//|file:)", page)
    assert "http://" not in page and "https://" not in page
    assert [t for t, _ in tags(page)].count("img") == 2  # nothing a student wrote became a tag


def test_one_assignment_and_an_empty_one():
    from dataclasses import replace

    from autograder.reports.cohort_view import AssignmentInfo

    view = sample_view(extra_students=2)
    view = replace(view, assignments=(*view.assignments, AssignmentInfo("1.2", "1.2 Intro to mech interp", 50)))
    both = instructor_report_html(view, generated_at=GENERATED)
    assert both.count("<h3>Score distribution</h3>") == 2 and 'href="#a-1-2"' in both
    only = instructor_report_html(view, "1.2", generated_at=GENERATED)
    assert "No submissions yet." in only and "1.1 Transformers" not in only
    assert section(only, "Not submitted").count("<tr>") == 1 + len(view.students)
    with pytest.raises(KeyError, match="it has: 1.1, 1.2"):
        instructor_report_html(view, "9.9")


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="LOUD SKIP: Debian's `chromium` is not installed, so the report is not checked in a "
                           "real browser (apt-get install chromium)")
def test_report_renders_in_headless_chromium(page, tmp_path):
    from chromium import render

    path = tmp_path / "report.html"
    path.write_text(page)
    shot = tmp_path / "report.png"
    check = render(path, shot)
    assert check.title == "fall25: grades report"
    assert check.errors == []
    assert len(check.images) == 2 and check.broken_images == []
    assert all(i["width"] > 300 and i["height"] > 150 for i in check.images)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and check.page_height > 1500
    handbook = REPO / "instructors" / "img" / "instructor_report.png"
    if not handbook.exists():  # the handbook's picture; regenerate by deleting it
        handbook.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, handbook)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="LOUD SKIP: Debian's `chromium` is not installed")
def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The Chromium check itself can fail: a broken image and a console error are both reported."""
    from chromium import render

    path = tmp_path / "broken.html"
    path.write_text('<!DOCTYPE html><html><head><title>broken</title></head><body>'
                    '<img src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')
    check = render(path, tmp_path / "broken.png")
    assert len(check.broken_images) == 1
    assert any("boom" in e for e in check.errors)
