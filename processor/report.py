"""What staff print: the door list per meeting, and one self-contained HTML report.

Residents' words (names, subjects, reasons) reach the report template only as
values in an autoescaped HTML template, so `<script>` or `{{ }}` in them print as text.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from processor import stafflog, staffstore
from processor.compose import format_when, make_environment
from processor.config import Config
from processor.errors import PermanentError
from processor.models import OUTCOMES, Meeting
from processor.store import Store

ATTENDEE_FIELDS = ("list", "name", "sender", "party_size", "access_needs", "registered_at")


@dataclass(frozen=True)
class AttendeeLists:
    """One meeting's registrations, split the way the clerk uses them on the day."""

    meeting_id: str
    title: str
    when: str
    door: list[dict[str, Any]]  # in person, confirmed: the list at the chamber door
    online: list[dict[str, Any]]  # confirmed online
    waitlisted: list[dict[str, Any]]

    @property
    def people_in_person(self) -> int:
        return sum(int(r["party_size"]) for r in self.door)

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        return (
            [("door", r) for r in self.door]
            + [("online", r) for r in self.online]
            + [("waitlisted", r) for r in self.waitlisted]
        )


def attendee_lists(store: Store, config: Config, meeting_id: str) -> AttendeeLists:
    meeting = config.meeting(meeting_id)
    rows = staffstore.attendee_rows(store, meeting_id)
    if meeting is None and not rows:
        known = ", ".join(m.id for m in config.meetings) or "none configured"
        raise PermanentError(f"unknown meeting {meeting_id!r} (known: {known})")
    confirmed = [r for r in rows if r["status"] == "confirmed"]
    return AttendeeLists(
        meeting_id=meeting_id,
        title=meeting.title if meeting else meeting_id,
        when=format_when(meeting.start, meeting.end, config.committee.timezone)
        if meeting
        else "(no longer configured)",
        door=[r for r in confirmed if r["mode"] == "in_person"],
        online=[r for r in confirmed if r["mode"] == "online"],
        waitlisted=[r for r in rows if r["status"] == "waitlisted"],
    )


def _needs(row: dict[str, Any]) -> str:
    return ", ".join(str(n).replace("_", " ") for n in row["access_needs"])


def attendees_as_csv(lists: AttendeeLists) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ATTENDEE_FIELDS)
    for name, row in lists.rows():
        values = (
            name,
            row["name"],
            row["sender"],
            row["party_size"],
            _needs(row),
            row["created_at"],
        )
        writer.writerow([stafflog.csv_cell(v) for v in values])
    return out.getvalue()


def attendees_as_table(lists: AttendeeLists) -> str:
    def section(title: str, rows: Sequence[dict[str, Any]], with_size: bool) -> list[str]:
        heads = ["name", "sender", *(["party"] if with_size else []), "access needs"]
        cells = [
            [
                " ".join((r["name"] or "-").split()),
                r["sender"],
                *([str(r["party_size"])] if with_size else []),
                _needs(r) or "-",
            ]
            for r in rows
        ]
        if not rows:
            return [f"{title}: nobody", ""]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
        lines = [
            f"{title} ({len(rows)})",
            "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        return [*lines, ""]

    lines = [f"{lists.title}: {lists.when}", ""]
    lines += section(f"In person, {lists.people_in_person} people", lists.door, True)
    lines += section("Online", lists.online, False)
    lines += section("Waiting list", lists.waitlisted, True)
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


# --- the HTML report -----------------------------------------------------------------------


def day_bounds(
    since: date | None, until: date | None, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """[since 00:00, the day after until 00:00) in the committee's time zone."""
    start = datetime.combine(since, time(), tz) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), tz) if until else None
    return start, end


def report_meetings(
    config: Config, meeting_id: str | None, start: datetime | None, end: datetime | None
) -> list[Meeting]:
    if meeting_id is not None:
        meeting = config.meeting(meeting_id)
        if meeting is None:
            raise PermanentError(f"unknown meeting {meeting_id!r}")
        return [meeting]
    return [
        m
        for m in config.meetings
        if (start is None or m.end >= start) and (end is None or m.start < end)
    ]


def render_report(
    store: Store,
    config: Config,
    *,
    meeting_id: str | None,
    since: date | None,
    until: date | None,
    now: datetime,
) -> str:
    """The whole report as one HTML page (inline CSS, nothing fetched when opened)."""
    tz = config.committee.timezone
    start, end = day_bounds(since, until, tz)
    entries = [
        e
        for e in stafflog.log_entries(store, meeting=meeting_id)
        if _within(e["received_at"], start, end)
    ]
    counts = Counter(e["outcome"] for e in entries)
    meetings = report_meetings(config, meeting_id, start, end)
    scope = [f"meeting {meeting_id}"] if meeting_id else []
    scope += [f"from {since.isoformat()}"] if since else []
    scope += [f"until {until.isoformat()}"] if until else []
    context = {
        "committee": config.committee.name,
        "scope": ", ".join(scope) or "all messages",
        "generated": now.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"),
        "counts": [(o, counts.get(o, 0)) for o in OUTCOMES],
        "total": len(entries),
        "meetings": [attendee_lists(store, config, m.id) for m in meetings],
        "referred": [e for e in entries if e["outcome"] == "referred"],
        "entries": entries,
    }
    return make_environment().get_template("report.html.j2").render(context)


def _within(received_at: str | None, start: datetime | None, end: datetime | None) -> bool:
    if received_at is None:
        return start is None and end is None
    moment = datetime.fromisoformat(received_at)
    return (start is None or moment >= start) and (end is None or moment < end)
