"""write_text_atomic, which writes every results.json, feedback page, grade export and report."""

from __future__ import annotations

import os

from autograder.grade.results import write_text_atomic


def test_the_file_gets_a_new_files_mode_and_exactly_the_text_in_utf8(tmp_path):
    """mkstemp's 0600 made feedback pages and reports unreadable to anyone else (a web server, a TA's account)."""
    mask = os.umask(0o022)
    os.umask(mask)
    write_text_atomic(tmp_path / "out" / "report.html", "Zoë O'Brien\r\nnext\n")
    path = tmp_path / "out" / "report.html"
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would have made it
    assert path.read_bytes() == "Zoë O'Brien\r\nnext\n".encode("utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # nothing left beside it
