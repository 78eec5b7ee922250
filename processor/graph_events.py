"""The Teams event as Graph wants it: request bodies and paths, built without I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from processor.models import Meeting
from processor.ports import Attendee

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# Namespace for transactionIds: the same organiser + meeting id always gives the same id,
# so a retried POST after a lost response returns the event already created.
_TRANSACTION_NAMESPACE = uuid.UUID("9a4c2a52-31a8-4f0e-9b0e-6f1d1b7f3c11")


def transaction_id(organiser: str, meeting_id: str) -> str:
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, f"{organiser.lower()}\n{meeting_id}"))


def _zone_name(tz: tzinfo | None) -> str:
    # Graph accepts IANA names as well as Windows ones in dateTimeTimeZone.timeZone.
    return tz.key if isinstance(tz, ZoneInfo) else "UTC"


def _date_time(moment: datetime) -> dict[str, str]:
    return {
        "dateTime": moment.replace(tzinfo=None).isoformat(timespec="seconds"),
        "timeZone": _zone_name(moment.tzinfo),
    }


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("teams_event.html.j2")


class EventRequests:
    """Builds the Graph request bodies for one organiser's Teams events (no I/O)."""

    def __init__(self, organiser: str, committee_name: str = "", contact: str = "") -> None:
        self.organiser = organiser
        self.committee_name = committee_name
        self.contact = contact
        self.events_path = f"/users/{quote(organiser, safe='@')}/events"

    def details(self, meeting: Meeting) -> dict[str, Any]:
        """The fields config decides: sent on create, compared and PATCHed on change."""
        body = _template().render(
            meeting=meeting,
            committee_name=self.committee_name,
            contact=self.contact,
            timezone=_zone_name(meeting.start.tzinfo),
        )
        return {
            "subject": meeting.title,
            "body": {"contentType": "html", "content": body},
            "start": _date_time(meeting.start),
            "end": _date_time(meeting.end),
            "location": {"displayName": meeting.venue},
        }

    def create(self, meeting: Meeting) -> dict[str, Any]:
        return {
            **self.details(meeting),
            "isOnlineMeeting": True,
            "onlineMeetingProvider": "teamsForBusiness",
            # Residents must never see each other's addresses.
            "hideAttendees": True,
            "allowNewTimeProposals": False,
            "responseRequested": False,
            "attendees": [],
            "transactionId": transaction_id(self.organiser, meeting.id),
        }

    def event_path(self, event_id: str) -> str:
        return f"{self.events_path}/{quote(event_id, safe='')}"


def new_attendees(
    current: Sequence[Mapping[str, Any]], add: Sequence[Attendee], remove: Sequence[str]
) -> list[dict[str, Any]] | None:
    """The attendee list after the change, or None when nothing changes."""
    gone = {address.lower() for address in remove}
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in current:
        email = item.get("emailAddress") or {}
        address = str(email.get("address", "")).lower()
        if not address or address in gone:
            continue
        seen.add(address)
        entry = {
            "address": email["address"],
            **({"name": email["name"]} if email.get("name") else {}),
        }
        kept.append({"emailAddress": entry, "type": item.get("type") or "required"})
    changed = len(kept) != len(current)
    for attendee in add:
        address = attendee.address.lower()
        if address in seen or address in gone:
            continue
        seen.add(address)
        entry = {"address": address, **({"name": attendee.name} if attendee.name else {})}
        kept.append({"emailAddress": entry, "type": "required"})
        changed = True
    return kept if changed else None
