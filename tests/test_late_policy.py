"""Late-policy arithmetic: grace, per started day, cap, extensions, DST, and which submission counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from autograder.cohort.config import LatePolicy
from autograder.cohort.late import Lateness, choose_counted, late_penalty

LONDON = ZoneInfo("Europe/London")
POLICY = LatePolicy(grace_minutes=15, penalty_per_day=0.10, max_penalty=0.50, counts="latest_on_time")
DUE = datetime(2026, 9, 21, 23, 59, tzinfo=LONDON)


def after_due(**delta) -> datetime:
    return DUE + timedelta(**delta)


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        (after_due(days=-3), Lateness(0, 0.0)),
        (DUE, Lateness(0, 0.0)),  # exactly at the deadline
        (after_due(minutes=10), Lateness(0, 0.0)),  # inside grace
        (after_due(minutes=15), Lateness(0, 0.0)),  # the last instant of grace
        (after_due(minutes=15, seconds=1), Lateness(1, 0.10)),  # one second after grace: a started day
        (after_due(days=1, minutes=15), Lateness(1, 0.10)),  # a whole day after grace: still the first day
        (after_due(days=1, minutes=15, seconds=1), Lateness(2, 0.20)),
        (after_due(days=3), Lateness(3, 0.30)),  # 0.3 exactly, not 0.30000000000000004
        (after_due(days=5, hours=1), Lateness(6, 0.50)),  # capped
        (after_due(days=40), Lateness(41, 0.50)),
    ],
)
def test_penalty_edges(submitted_at, expected):
    assert late_penalty(submitted_at, DUE, POLICY) == expected


def test_extension_moves_the_deadline():
    extension = datetime(2026, 9, 24, 23, 59, tzinfo=LONDON)
    two_days_after_due = after_due(days=2)
    assert late_penalty(two_days_after_due, DUE, POLICY) == Lateness(2, 0.20)
    assert late_penalty(two_days_after_due, DUE, POLICY, extension_due=extension) == Lateness(0, 0.0)
    # Grace applies after the extended deadline as well.
    assert late_penalty(extension + timedelta(minutes=14), DUE, POLICY, extension) == Lateness(0, 0.0)
    assert late_penalty(extension + timedelta(minutes=16), DUE, POLICY, extension) == Lateness(1, 0.10)


def test_days_are_real_elapsed_time_across_the_clocks_going_back():
    """Due the night before London's clocks go back (25 Oct 2026, 02:00 BST -> 01:00 GMT).

    23:30 local the next evening is only 23.5 hours later on the wall clock but
    24.5 hours later in fact: a second started day. Naive wall-clock
    subtraction would say one day.
    """
    no_grace = LatePolicy(grace_minutes=0, penalty_per_day=0.10, max_penalty=0.50)
    due = datetime(2026, 10, 24, 23, 59, tzinfo=LONDON)
    next_evening = datetime(2026, 10, 25, 23, 30, tzinfo=LONDON)
    assert next_evening - due == timedelta(hours=23, minutes=31)  # what Python's same-zone subtraction says
    assert late_penalty(next_evening, due, no_grace) == Lateness(2, 0.20)
    # The same instant written in UTC gives the same answer.
    assert late_penalty(next_evening.astimezone(timezone.utc), due, no_grace) == Lateness(2, 0.20)


def test_days_across_the_clocks_going_forward():
    """Due the night before the clocks go forward (29 Mar 2026, 01:00 GMT -> 02:00 BST): the local day is 23 h."""
    no_grace = LatePolicy(grace_minutes=0, penalty_per_day=0.10, max_penalty=0.50)
    due = datetime(2026, 3, 28, 23, 59, tzinfo=LONDON)
    assert late_penalty(datetime(2026, 3, 30, 0, 30, tzinfo=LONDON), due, no_grace) == Lateness(1, 0.10)  # 23.5 h
    assert late_penalty(datetime(2026, 3, 30, 1, 30, tzinfo=LONDON), due, no_grace) == Lateness(2, 0.20)  # 24.5 h


def test_no_penalty_policy_and_naive_times_refused():
    lenient = LatePolicy(grace_minutes=0, penalty_per_day=0.0, max_penalty=1.0)
    assert late_penalty(after_due(days=9), DUE, lenient) == Lateness(9, 0.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        late_penalty(datetime(2026, 9, 22, 10, 0), DUE, POLICY)


@dataclass
class Sub:
    name: str
    submitted_at: datetime


def test_latest_on_time_counts_over_a_later_late_one():
    subs = [Sub("first", after_due(days=-2)), Sub("second", after_due(minutes=5)), Sub("late", after_due(hours=5))]
    assert choose_counted(subs, DUE, POLICY).name == "second"  # inside grace is on time
    latest = LatePolicy(grace_minutes=15, penalty_per_day=0.10, max_penalty=0.50, counts="latest")
    assert choose_counted(subs, DUE, latest).name == "late"


def test_when_none_is_on_time_the_latest_counts_with_its_penalty():
    subs = [Sub("b", after_due(days=3)), Sub("a", after_due(days=1))]  # given out of order
    counted = choose_counted(subs, DUE, POLICY)
    assert counted.name == "b"
    assert late_penalty(counted.submitted_at, DUE, POLICY) == Lateness(3, 0.30)


def test_choice_uses_the_students_own_deadline_and_handles_edge_inputs():
    extension = datetime(2026, 9, 24, 23, 59, tzinfo=LONDON)
    subs = [Sub("early", after_due(days=-1)), Sub("within extension", after_due(days=2))]
    assert choose_counted(subs, DUE, POLICY).name == "early"
    assert choose_counted(subs, extension, POLICY).name == "within extension"
    assert choose_counted([], DUE, POLICY) is None
    same_time = [Sub("one", DUE), Sub("two", DUE)]
    assert choose_counted(same_time, DUE, POLICY).name == "two"  # a tie keeps the one listed last
    # Times in different zones compare as instants: 23:00 UTC is after 23:59 London (BST) minus an hour.
    mixed = [Sub("london", datetime(2026, 9, 21, 23, 30, tzinfo=LONDON)),
             Sub("utc", datetime(2026, 9, 21, 22, 45, tzinfo=timezone.utc))]
    assert choose_counted(mixed, DUE, POLICY).name == "utc"
