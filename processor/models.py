"""Frozen values that flow through the pipeline: InboundEmail -> Request -> Decision."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Literal, get_args

Intent = Literal["attend", "cancel", "change", "speak", "other", "automated"]
Mode = Literal["in_person", "online"]
Outcome = Literal[
    "confirmed",
    "waitlisted",
    "clarification_requested",
    "cancelled",
    "changed",
    "already_registered",
    "closed",
    "referred",
    "ignored",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
INTENTS: tuple[Intent, ...] = get_args(Intent)
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True)
class Meeting:
    """A public committee meeting, as declared in the config."""

    id: str
    title: str
    start: datetime  # timezone-aware
    end: datetime  # timezone-aware
    venue: str
    in_person_capacity: int
    online_capacity: int
    registration_closes: datetime | None = None  # timezone-aware; None: at the start
    teams_event_id: str | None = None  # adopt this existing Graph event instead of creating one

    def closes_at(self) -> datetime:
        return self.registration_closes or self.start


@dataclass(frozen=True)
class Evidence:
    """Why a field has its value: the rule that fired and the phrase it matched."""

    field: str  # "intent", "mode", "meeting", "name", "party_size", "access_needs", ...
    rule: str  # a stable rule name, e.g. "mode.online.teams_link"
    phrase: str  # the resident's words (or header) that triggered it


@dataclass(frozen=True)
class InboundEmail:
    """A received message, decoded once; everything later reads this, not raw MIME."""

    message_id: str  # with angle brackets; synthesised from the sha256 when missing
    sender: str  # From address, lower-case ("" when unparseable)
    display_name: str | None  # From display name, decoded
    reply_to: str  # where a reply goes: Reply-To if valid, else sender
    subject: str  # decoded, single line
    date: datetime | None  # Date header, timezone-aware, None if missing/invalid
    in_reply_to: str | None
    references: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, decoded value) for classify
    content_type: str  # top-level, lower-case, e.g. "multipart/alternative"
    text: str  # the whole readable body (text/plain preferred, else HTML as text)
    new_text: str  # `text` without quoted replies, forwarded notices and signature
    signature: str | None  # the stripped signature block, if one was found
    defects: tuple[str, ...] = ()  # human sentences about malformed parts
    size: int = 0  # raw size in bytes
    sha256: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


@dataclass(frozen=True)
class Classification:
    """Whether a message is automated (no reply) or otherwise not for understanding."""

    automated: bool
    rule: str = ""  # e.g. "auto_submitted", "return_path_null", "own_reply"
    reason: str = ""  # one human sentence


@dataclass(frozen=True)
class Request:
    """What a resident asked for, with the evidence for each field."""

    intent: Intent
    mode: Mode | None = None
    meeting_id: str | None = None  # set only when exactly one meeting matched
    meeting_candidates: tuple[str, ...] = ()  # every meeting id the text could mean
    meeting_named: bool = False  # the text named a date/title (even one matching nothing)
    name: str | None = None
    party_size: int | None = None  # people in person, resident included
    access_needs: tuple[str, ...] = ()  # normalised: "wheelchair", "hearing_loop", "bsl", ...
    wants_to_speak: bool = False
    refer_reasons: tuple[str, ...] = ()  # human sentences: why staff should look
    evidence: tuple[Evidence, ...] = ()

    def rules(self) -> tuple[str, ...]:
        return tuple(e.rule for e in self.evidence)


ReplyKind = Literal[
    "confirmed_in_person",
    "confirmed_online",
    "waitlisted",
    "clarification_meeting",
    "clarification_mode",
    "cancelled",
    "changed",
    "already_registered",
    "closed",
    "referred",
    "speak_acknowledged",
    "no_registration",
    "promoted",
    "reminder",
]


@dataclass(frozen=True)
class Decision:
    """The outcome for one message, and what to do about it."""

    outcome: Outcome
    reason: str  # one human sentence for the staff log
    rule: str  # the decision rule that produced it, e.g. "decide.confirm.online"
    meeting_id: str | None = None
    mode: Mode | None = None
    party_size: int | None = None
    reply_kind: ReplyKind | None = None  # None: no reply (ignored mail)
    calendar_add: bool = False  # add the sender as a Teams attendee
    calendar_remove: bool = False  # remove the sender from the Teams attendees
    open_meeting_ids: tuple[str, ...] = field(default=())  # for clarification replies


RegistrationStatus = Literal["confirmed", "waitlisted", "cancelled"]


@dataclass(frozen=True)
class Registration:
    """One resident's place at one meeting, as the store holds it."""

    meeting_id: str
    sender: str
    name: str | None
    mode: Mode
    party_size: int  # people in person (resident included); 1 online
    status: RegistrationStatus
    access_needs: tuple[str, ...] = ()
    message_id: str = ""  # the request that made or last changed it (replies thread to it)


@dataclass(frozen=True)
class Occupancy:
    """Confirmed places already taken at a meeting."""

    in_person: int = 0  # sum of party sizes
    online: int = 0  # people


@dataclass(frozen=True)
class Situation:
    """Everything `decide` needs besides the message: passed in, so deciding stays pure."""

    now: datetime  # timezone-aware
    meetings: tuple[Meeting, ...]
    registrations: tuple[Registration, ...]  # this sender's registrations (any status)
    occupancy: dict[str, Occupancy]  # by meeting id


def request_to_json(request: Request) -> str:
    """Serialise a Request for the store (so a clarification reply can complete it)."""
    # One level by hand: dataclasses.asdict deep-copies every value, a quarter of the
    # cost of recording a decision (bench/backlog.py --profile).
    data = {f.name: getattr(request, f.name) for f in fields(Request)}
    data["evidence"] = [vars(e) for e in request.evidence]
    return json.dumps(data, sort_keys=True)


def request_from_json(text: str) -> Request:
    data = json.loads(text)
    data["meeting_candidates"] = tuple(data.get("meeting_candidates", ()))
    data["access_needs"] = tuple(data.get("access_needs", ()))
    data["refer_reasons"] = tuple(data.get("refer_reasons", ()))
    data["evidence"] = tuple(Evidence(**e) for e in data.get("evidence", ()))
    return Request(**data)
