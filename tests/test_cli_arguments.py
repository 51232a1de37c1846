"""Positional arguments written after options land where they belong (autograder.cli.place_late_positionals);
end to end in tests/test_grade_exports.py (`export grades --cohort fall25 0.1 ...`, as reports.md writes it)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from autograder.cli import place_late_positionals


def grade_like() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grade")
    parser.add_argument("assignment")
    parser.add_argument("submissions", nargs="*", type=Path)
    parser.add_argument("--out", type=Path)
    return parser


def export_like() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export")
    parser.add_argument("tool", choices=["nbgrader", "grades"])
    parser.add_argument("assignment", nargs="?")
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--cohort")
    return parser


def parse(parser, words):
    args, extra = parser.parse_known_args(words)
    return args, place_late_positionals(args, extra, parser)


def test_files_after_an_option_are_the_submissions():
    args, left = parse(grade_like(), ["1.1", "--out", "R", "a.ipynb", "b.ipynb"])
    assert (args.assignment, args.submissions, args.out, left) == ("1.1", [Path("a.ipynb"), Path("b.ipynb")], Path("R"), [])


def test_optional_positionals_fill_in_order():
    args, left = parse(export_like(), ["grades", "--cohort", "fall25", "1.1"])
    assert (args.tool, args.assignment, args.out, args.cohort, left) == ("grades", "1.1", None, "fall25", [])
    args, left = parse(export_like(), ["nbgrader", "--cohort", "x", "1.1", "course", "extra"])
    assert (args.assignment, args.out, left) == ("1.1", Path("course"), ["extra"])  # left over: still an error


def test_an_unknown_option_is_left_for_argparse_to_name():
    args, left = parse(grade_like(), ["1.1", "--out", "R", "a.ipynb", "--jobz", "2"])
    assert left == ["a.ipynb", "--jobz", "2"] and args.submissions == []


def test_a_positional_in_place_is_not_moved():
    args, left = parse(grade_like(), ["1.1", "a.ipynb", "--out", "R"])
    assert args.submissions == [Path("a.ipynb")] and left == []


def test_a_late_word_that_is_not_a_choice_is_refused():
    parser = argparse.ArgumentParser(prog="pick")
    parser.add_argument("--n")
    parser.add_argument("kind", nargs="?", choices=["a", "b"])
    with pytest.raises(SystemExit):
        parse(parser, ["--n", "1", "c"])
