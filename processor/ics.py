"""The .ics calendar file attached to in-person confirmations (RFC 5545, METHOD:PUBLISH)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache

from icalendar import Calendar, Event

from processor.models import Meeting

PRODID = "-//attendance-processor//committee replies//EN"


def event_uid(meeting_id: str, sender: str, domain: str) -> str:
    """A UID stable for one resident at one meeting, so a resent file updates, not duplicates.

    The address is hashed: the UID travels in calendar apps and should not spell it out.
    """
    digest = hashlib.sha1(sender.strip().lower().encode("utf-8")).hexdigest()[:16]
    return f"{meeting_id}-{digest}@{domain}"


def build_ics(
    meeting: Meeting,
    *,
    sender: str,
    domain: str,
    now: datetime,
    description: str,
    organiser_name: str = "",
    organiser_address: str = "",
    sequence: int = 0,
) -> bytes:
    """The calendar file for `meeting`, as bytes ready to attach.

    PUBLISH rather than REQUEST: the resident gets an entry to keep, not an invitation
    their client would try to answer (RFC 5546 section 3.2.1).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")

    event = Event()
    event.add("uid", event_uid(meeting.id, sender, domain))
    event.add("dtstamp", now.astimezone(UTC))
    # Aware datetimes with a ZoneInfo become DTSTART;TZID=...; UTC ones end in Z.
    event.add("dtstart", meeting.start)
    event.add("dtend", meeting.end)
    event.add("summary", meeting.title)
    event.add("location", meeting.venue)
    event.add("description", description)
    event.add("sequence", sequence)
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    if organiser_address:
        organizer = f"mailto:{organiser_address}"
        params = {"cn": organiser_name} if organiser_name else {}
        event.add("organizer", organizer, parameters=params)
    cal.add_component(event)
    payload: bytes = cal.to_ical()
    # Outlook and Apple Calendar need the VTIMEZONE a TZID refers to. They go before the
    # event, where `Calendar.add_missing_timezones` puts them; each is serialised once.
    missing = getattr(cal, "get_missing_tzids", None)
    zones = b"".join(vtimezone(tzid) for tzid in sorted(missing() if missing else ()))
    if zones:
        payload = payload.replace(b"BEGIN:VEVENT\r\n", zones + b"BEGIN:VEVENT\r\n", 1)
    return payload


@lru_cache(maxsize=16)
def vtimezone(tzid: str) -> bytes:
    """The serialised VTIMEZONE of `tzid`, or nothing for a zone icalendar does not know.

    Cached: building one takes icalendar about 7 ms (its docs ask callers to cache it),
    far more than the rest of a reply, and a committee meets in one time zone.
    """
    from icalendar import Timezone  # icalendar >= 6.1, like get_missing_tzids

    try:
        zone: bytes = Timezone.from_tzid(tzid).to_ical()
    except ValueError:
        return b""
    return zone
