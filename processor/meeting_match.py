"""Which meetings a resident's words point at: ids, titles, dates, weekdays and months."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import dateparser

from processor.models import Meeting

_F = re.IGNORECASE
_MONTHS = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_ORD = r"(\d{1,2})(?:st|nd|rd|th)?"

_OPEN_NEXT = re.compile(
    r"\b(?:the )?(?:next|upcoming|forthcoming|coming) (?:committee )?meeting\b", _F
)


@dataclass(frozen=True)
class _DateHit:
    rule: str
    phrase: str
    days: tuple[date, ...] = ()  # exact local dates
    day_month: tuple[int, int] | None = None  # (day, month) with no year given
    day_only: int | None = None
    month_only: int | None = None


def reference_time(sent: datetime | None, now: datetime) -> datetime:
    """The moment relative dates ("Thursday", "tomorrow") are read against."""
    # A Date header far from our clock is a wrong clock or a forgery: resolve
    # "Thursday" against our own time instead.
    if sent is not None and abs(sent - now) <= timedelta(days=30):
        return sent
    return now


@dataclass(frozen=True)
class MeetingMatch:
    named: bool  # whether the text names a meeting at all
    candidates: tuple[str, ...]  # every meeting (open or not) it could mean
    found: tuple[tuple[str, str], ...] = ()  # (rule, phrase) pairs, in the order they fired


def match_meetings(
    text: str, meetings: Sequence[Meeting], tz: ZoneInfo, reference: datetime
) -> MeetingMatch:
    """Whether the text names a meeting, every meeting it could mean, and why."""
    local = {m.id: m.start.astimezone(tz).date() for m in meetings}
    for rule, ids, phrase in _by_title(text, meetings):
        return MeetingMatch(True, ids, ((rule, phrase),))
    hits = _date_hits(text, reference)
    if not hits:
        nxt = _OPEN_NEXT.search(text)
        future = sorted((m for m in meetings if m.start > reference), key=lambda m: m.start)
        if nxt and future:
            return MeetingMatch(True, (future[0].id,), (("meeting.next", nxt.group(0)),))
        return MeetingMatch(False, ())
    matched: list[str] = []
    for hit in hits:
        for meeting in meetings:
            day = local[meeting.id]
            if (
                day in hit.days
                or hit.day_month == (day.day, day.month)
                or hit.day_only == day.day
                or hit.month_only == day.month
            ) and meeting.id not in matched:
                matched.append(meeting.id)
    return MeetingMatch(True, tuple(matched), tuple((hit.rule, hit.phrase) for hit in hits))


def _by_title(text: str, meetings: Sequence[Meeting]) -> list[tuple[str, tuple[str, ...], str]]:
    lowered = text.lower()
    for meeting in meetings:
        if meeting.id.lower() in lowered:
            return [("meeting.id", (meeting.id,), meeting.id)]
    words = [m.title.lower().split() for m in meetings]
    common = 0
    while len(words) > 1 and all(len(w) > common for w in words):
        if len({w[common] for w in words}) != 1:
            break
        common += 1
    for meeting, title in zip(meetings, words, strict=True):
        distinct = " ".join(title[common:]).strip(" -–:,")
        if len(meetings) > 1 and len(distinct) >= 4 and distinct in lowered:
            return [("meeting.title", (meeting.id,), distinct)]
    return []


_ABSOLUTE = re.compile(
    rf"\b{_ORD}\s*(?:of\s+)?{_MONTHS}\b\.?(?:,?\s*\d{{4}})?|"
    rf"\b{_MONTHS}\.?\s+(?:the\s+)?{_ORD}\b(?!\s*(?:am|pm|:))(?:,?\s*\d{{4}})?|"
    r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b|\b\d{1,2}[.-]\d{1,2}[.-]\d{4}\b|\b\d{4}-\d{2}-\d{2}\b",
    _F,
)
_DAY_ONLY = re.compile(rf"\b(?:{_DAYS}\s+(?:the\s+)?|the\s+)(\d{{1,2}})(?:st|nd|rd|th)\b", _F)
_RELATIVE = re.compile(
    rf"\b(?:today|tonight|tomorrow|this evening|(?:this|next|coming)\s+{_DAYS}|{_DAYS})\b", _F
)
_MONTH_ONLY = re.compile(
    rf"\b(?:the|in|for|this|next|of)\s+({_MONTHS})\b(?!\s*\d)|"
    rf"\b({_MONTHS})\s+(?:meeting|one|session|committee)\b",
    _F,
)
_HAS_YEAR = re.compile(r"\d{4}|\d{1,2}/\d{1,2}/\d{2}")
_NOON = time(12)
_MONTH_NUMBERS = {
    name: i
    for i, names in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
    for name in (names,)
}


def _date_hits(text: str, reference: datetime) -> list[_DateHit]:
    hits: list[_DateHit] = []
    taken: list[tuple[int, int]] = []
    base = reference.replace(tzinfo=None)
    for match in _ABSOLUTE.finditer(text):
        hit = _absolute(match.group(0), base)
        if hit is not None:
            hits.append(hit)
            taken.append(match.span())
    for match in _DAY_ONLY.finditer(text):
        if not _overlaps(match.span(), taken):
            day = int(re.findall(r"\d{1,2}", match.group(0))[0])
            if 1 <= day <= 31:
                hits.append(_DateHit("meeting.day_of_month", match.group(0), day_only=day))
                taken.append(match.span())
    # A weekday beside a full date ("Thursday 17th December") only repeats it.
    for match in _RELATIVE.finditer(text) if not hits else ():
        if not _overlaps(match.span(), taken):
            hit = _relative(match.group(0), base)
            if hit is not None:
                hits.append(hit)
                taken.append(match.span())
    if not hits:
        for match in _MONTH_ONLY.finditer(text):
            word = (match.group(1) or match.group(2)).lower()
            if word == "may" and "meeting" not in match.group(0).lower():
                continue  # "in may" is too often the verb
            month = _MONTH_NUMBERS[word[:3]]
            hits.append(_DateHit("meeting.month", match.group(0), month_only=month))
    return hits


def _absolute(phrase: str, base: datetime) -> _DateHit | None:
    day = _absolute_day(_normalised(phrase.replace(" of ", " ")), base.date())
    if day is None:
        return None
    if _HAS_YEAR.search(phrase):
        return _DateHit("meeting.date", phrase, days=(day,))
    return _DateHit("meeting.date", phrase, day_month=(day.day, day.month))


def _relative(phrase: str, base: datetime) -> _DateHit | None:
    lowered = phrase.lower()
    query = re.sub(r"^coming\s+|'s$", "", lowered)
    query = "today" if query in ("tonight", "this evening") else query
    day = _relative_day(_normalised(query), base.date())
    if day is None:
        return None
    days = [day]
    if query in _WEEKDAYS and _WEEKDAYS.index(query) == base.weekday():
        # On a Thursday, "Thursday's meeting" most likely means tonight's.
        days.insert(0, base.date())
    if lowered.startswith("next "):
        # In British use "next Thursday" can mean the Thursday after this coming one.
        days.append(day + timedelta(days=7))
    return _DateHit("meeting.relative_day", phrase, days=tuple(days))


# dateparser takes about half a millisecond a phrase, and a backlog repeats its phrases
# ("10 December", "Thursday"), so its answers are cached. The key is the phrase and the
# reference's local calendar date, not its time: none of these phrases holds a time of
# day (the regexes above stop short of one), and dateparser then weighs the day it
# read, at midnight, against the base, so any time on the same date picks the same day;
# it is asked at noon. The caller has already put the reference in the committee's time
# zone, so the local date already reflects it.
_CACHE_SIZE = 4096


@lru_cache(maxsize=_CACHE_SIZE)
def _absolute_day(query: str, base_day: date) -> date | None:
    settings = {
        "DATE_ORDER": "DMY",  # UK residents write 10/03 for 10 March
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(base_day, _NOON),
        "REQUIRE_PARTS": ["day", "month"],
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    parsed = dateparser.parse(query, languages=["en"], settings=settings)
    return None if parsed is None else parsed.date()


@lru_cache(maxsize=_CACHE_SIZE)
def _relative_day(query: str, base_day: date) -> date | None:
    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(base_day, _NOON),
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    parsed = dateparser.parse(query, languages=["en"], settings=settings)
    return None if parsed is None else parsed.date()


def _normalised(query: str) -> str:
    # dateparser folds case and runs of spaces itself; folding them here lets
    # "10 December" and "10  december" share one cache entry.
    return " ".join(query.lower().split())


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)
