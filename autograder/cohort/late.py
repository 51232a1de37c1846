"""Late-policy arithmetic: pure functions on timezone-aware datetimes.

A submission is on time up to the due date plus the grace period. After that
it loses ``penalty_per_day`` of its earned score for every *started* day,
counted in real elapsed time (24 hours), capped at ``max_penalty``. Elapsed
time is measured in UTC, so a deadline the night before the clocks change is
neither an hour kinder nor an hour harsher than any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol, Sequence, TypeVar

from autograder.cohort.config import LatePolicy

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Lateness:
    days_late: int  # started days after due + grace; 0 when on time
    fraction: float  # share of the earned score taken away, 0..max_penalty

    @property
    def on_time(self) -> bool:
        return self.days_late == 0

    def describe(self) -> str:
        if self.on_time:
            return "on time"
        days = f"{self.days_late} day{'s' if self.days_late != 1 else ''} late"
        return f"{days}, -{self.fraction:.0%}"


ON_TIME = Lateness(0, 0.0)


def late_penalty(
    submitted_at: datetime, due: datetime, policy: LatePolicy, extension_due: datetime | None = None
) -> Lateness:
    """How late ``submitted_at`` is against ``due`` (or the student's ``extension_due``), and what it costs."""
    for name, value in (("submitted_at", submitted_at), ("due", due), ("extension_due", extension_due)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (got the naive {value}); attach the cohort's timezone")
    deadline = _utc(extension_due or due) + timedelta(minutes=policy.grace_minutes)
    overdue = _utc(submitted_at) - deadline
    if overdue <= timedelta(0):
        return ON_TIME
    days = -(-overdue // ONE_DAY)  # ceiling: every started day counts
    # Rounded so that 3 x 0.1 reads 0.3, not 0.30000000000000004.
    return Lateness(days, round(min(policy.max_penalty, days * policy.penalty_per_day), 9))


class Timed(Protocol):
    submitted_at: datetime


T = TypeVar("T", bound=Timed)


def choose_counted(submissions: Sequence[T], due: datetime, policy: LatePolicy) -> T | None:
    """The submission that counts (``None`` when there is none).

    ``counts = "latest_on_time"``: the latest one on time (within grace); if
    none is on time, the latest overall, which then carries its penalty.
    ``counts = "latest"``: simply the latest. ``due`` is the student's own
    deadline (their extension, if any). Ties keep the one listed last.
    """
    if not submissions:
        return None
    ordered = sorted(enumerate(submissions), key=lambda pair: (_utc(pair[1].submitted_at), pair[0]))
    latest = ordered[-1][1]
    if policy.counts == "latest":
        return latest
    on_time = [s for _, s in ordered if late_penalty(s.submitted_at, due, policy).on_time]
    return on_time[-1] if on_time else latest


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)
