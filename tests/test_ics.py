"""The .ics file: parses back, carries the meeting, keeps one UID per resident and meeting."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event, Timezone

from processor.compose import compose_reply, reply_message_id
from processor.config import CommitteeConfig
from processor.ics import build_ics, event_uid, vtimezone
from processor.models import Decision, InboundEmail, Meeting

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)
MEETING = Meeting(
    id="cdc-2026-12",
    title="Crime and Disorder Committee",
    start=datetime(2026, 12, 10, 18, 30, tzinfo=LONDON),
    end=datetime(2026, 12, 10, 20, 30, tzinfo=LONDON),
    venue="Council Chamber, Town Hall",
    in_person_capacity=40,
    online_capacity=200,
)
COMMITTEE = CommitteeConfig(
    name="Crime and Disorder Committee",
    address="cdc@example.gov.uk",
    timezone=LONDON,
    contact="access@example.gov.uk",
    replies_per_sender_per_day=5,
)


def _event(payload: bytes) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(payload)
    events = calendar.events
    assert len(events) == 1
    return calendar, events[0]


def _build(sender: str = "jo@example.org", now: datetime = NOW, sequence: int = 0) -> bytes:
    return build_ics(
        MEETING,
        sender=sender,
        domain="example.gov.uk",
        now=now,
        description="Places booked: 2.",
        organiser_name="Crime and Disorder Committee",
        organiser_address="cdc@example.gov.uk",
        sequence=sequence,
    )


def test_it_parses_back_with_the_meeting_details() -> None:
    calendar, event = _event(_build(sequence=2))

    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(event["SUMMARY"]) == "Crime and Disorder Committee"
    assert str(event["LOCATION"]) == "Council Chamber, Town Hall"
    assert str(event["DESCRIPTION"]) == "Places booked: 2."
    assert event.decoded("DTSTART") == MEETING.start
    assert event.decoded("DTEND") == MEETING.end
    assert event.decoded("DTSTAMP") == NOW.astimezone(UTC)
    assert event.decoded("SEQUENCE") == 2
    assert str(event["ORGANIZER"]) == "mailto:cdc@example.gov.uk"


def test_it_names_the_time_zone_and_defines_it() -> None:
    payload = _build()
    assert b"DTSTART;TZID=Europe/London:20261210T183000" in payload
    assert b"BEGIN:VTIMEZONE" in payload


def test_it_defines_the_time_zone_as_icalendar_does() -> None:
    calendar, _ = _event(_build())

    assert [c.name for c in calendar.subcomponents] == ["VTIMEZONE", "VEVENT"]
    assert calendar.get_missing_tzids() == set()
    assert vtimezone("Europe/London") == Timezone.from_tzid("Europe/London").to_ical()
    assert vtimezone("Europe/London") in _build()


def test_it_defines_every_time_zone_used_in_a_fixed_order() -> None:
    meeting = replace(MEETING, end=MEETING.end.astimezone(ZoneInfo("America/New_York")))
    payload = build_ics(meeting, sender="jo@example.org", domain="d", now=NOW, description="")
    calendar = Calendar.from_ical(payload)

    assert [c.get("TZID") for c in calendar.walk("VTIMEZONE")] == [
        "America/New_York",
        "Europe/London",
    ]
    assert calendar.get_missing_tzids() == set()
    again = build_ics(meeting, sender="jo@example.org", domain="d", now=NOW, description="")
    assert again == payload


def test_it_skips_a_time_zone_icalendar_cannot_describe() -> None:
    assert vtimezone("No/Such_Zone") == b""


def test_it_writes_utc_meetings_in_utc() -> None:
    utc_meeting = replace(
        MEETING, start=MEETING.start.astimezone(UTC), end=MEETING.end.astimezone(UTC)
    )
    payload = build_ics(
        utc_meeting, sender="jo@example.org", domain="example.gov.uk", now=NOW, description=""
    )
    assert b"DTSTART:20261210T183000Z" in payload
    assert b"VTIMEZONE" not in payload


def test_it_keeps_the_uid_stable_across_calls() -> None:
    _, first = _event(_build(now=NOW))
    _, later = _event(_build(now=NOW + timedelta(days=3), sequence=1))

    expected = f"cdc-2026-12-{hashlib.sha1(b'jo@example.org').hexdigest()[:16]}@example.gov.uk"
    assert str(first["UID"]) == str(later["UID"]) == expected


def test_it_gives_each_resident_their_own_uid() -> None:
    _, jo = _event(_build(sender="jo@example.org"))
    _, sam = _event(_build(sender="sam@example.org"))
    assert str(jo["UID"]) != str(sam["UID"])
    assert event_uid("m", "Jo@Example.org", "d") == event_uid("m", "jo@example.org", "d")


def test_it_keeps_the_address_out_of_the_uid() -> None:
    assert "jo@example.org" not in event_uid("cdc-2026-12", "jo@example.org", "example.gov.uk")


def test_it_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _build(now=datetime(2026, 12, 1, 9, 0))


def _reply(now: datetime) -> EmailMessage:
    email = InboundEmail(
        message_id="<request-1@example.org>",
        sender="jo@example.org",
        display_name="Jo",
        reply_to="jo@example.org",
        subject="Thursday",
        date=now,
        in_reply_to=None,
        references=(),
        headers=(),
        content_type="text/plain",
        text="",
        new_text="",
        signature=None,
    )
    reply = compose_reply(
        "confirmed_in_person",
        email=email,
        decision=Decision(
            outcome="confirmed",
            reason="test",
            rule="test",
            meeting_id=MEETING.id,
            mode="in_person",
            party_size=2,
        ),
        meeting=MEETING,
        open_meetings=[MEETING],
        committee=COMMITTEE,
        message_id=reply_message_id("<request-1@example.org>", "confirmed_in_person", "x"),
        now=now,
    )
    return reply.message()


def test_it_attaches_the_same_uid_to_every_reply_for_one_place() -> None:
    uids = []
    for now in (NOW, NOW + timedelta(hours=5)):
        (attachment,) = list(_reply(now).iter_attachments())
        payload = attachment.get_content()
        _, event = _event(payload.encode() if isinstance(payload, str) else payload)
        assert "2 (you and 1 other person)" in str(event["DESCRIPTION"])
        uids.append(str(event["UID"]))
    assert uids[0] == uids[1]
    assert uids[0].endswith("@example.gov.uk")
