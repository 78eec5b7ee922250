"""Deadline rules across weekends and the bank holidays of England and Wales."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from processor.deadlines import parse_rule, resolve

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        # Thursday meeting, 3 working days before: Monday noon.
        ("12:00, 3 working days before", "2026-12-10T18:30", "2026-12-07T12:00"),
        # Monday meeting, the working day before: the Friday, across the weekend.
        ("16:00 the working day before", "2026-12-07T18:30", "2026-12-04T16:00"),
        # Tuesday 29 Dec 2026: 28th is Boxing Day (observed), 25th Christmas: Thursday 24th.
        ("16:00 the working day before", "2026-12-29T18:30", "2026-12-24T16:00"),
        # Thursday 9 April 2026, 3 working days before: skips Easter Monday (6th) -> Thu 2nd?
        # Wed 8, Tue 7 are working days, Mon 6 is Easter Monday, Fri 3 Good Friday -> Thu 2.
        ("09:30, 3 working days before", "2026-04-09T18:30", "2026-04-02T09:30"),
        ("12:00, two working days before", "2026-12-10T18:30", "2026-12-08T12:00"),
    ],
)
def test_it_counts_working_days_back(rule: str, start: str, expected: str) -> None:
    meeting = datetime.fromisoformat(start).replace(tzinfo=LONDON)
    assert resolve(rule, meeting, LONDON) == datetime.fromisoformat(expected).replace(tzinfo=LONDON)


@pytest.mark.parametrize("text", ["noon on Monday", "25:00, 1 working day before", "", "12:00"])
def test_it_refuses_what_is_not_a_rule(text: str) -> None:
    assert parse_rule(text) is None
