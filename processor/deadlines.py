"""Registration deadlines as rules: "12:00, 3 working days before" the meeting.

Working days skip weekends and the bank holidays of England and Wales (the two
nations share one list; the `holidays` package's ENG subdivision holds it).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_WORDS = {"the": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
RULE = re.compile(
    r"^\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*,?\s*"
    r"(?:(?P<count>\d+|the|one|two|three|four|five)\s+)?working\s+days?\s+before\s*$",
    re.IGNORECASE,
)


@lru_cache(maxsize=8)
def _bank_holidays(year: int) -> frozenset[date]:
    import holidays  # a tenth of the worker's start-up; most cycles never need it

    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=[year]).keys())


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def working_days_before(day: date, count: int) -> date:
    """The date `count` working days before `day` (which itself need not be one)."""
    current = day
    while count > 0:
        current -= timedelta(days=1)
        if is_working_day(current):
            count -= 1
    return current


def parse_rule(text: str) -> tuple[time, int] | None:
    """("12:00, 3 working days before") -> (12:00, 3); None when it is not a rule."""
    match = RULE.match(text)
    if match is None:
        return None
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        return None
    raw = (match["count"] or "1").lower()
    count = _WORDS[raw] if raw in _WORDS else int(raw)
    return time(hour, minute), count


def resolve(text: str, meeting_start: datetime, tz: ZoneInfo) -> datetime | None:
    """The deadline a rule gives for a meeting, in the committee's time zone."""
    rule = parse_rule(text)
    if rule is None:
        return None
    at, count = rule
    day = working_days_before(meeting_start.astimezone(tz).date(), count)
    return datetime.combine(day, at, tzinfo=tz)
