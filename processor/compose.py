"""Composing the reply email: Jinja2 templates per reply kind, threading headers, .ics.

Residents' words reach the templates only as values (never as template source), the
HTML templates are autoescaped, and no header holds a resident's words unless they are
one line (names, subjects) or checked (addresses, Message-IDs), with anything that is not
plain ASCII, or that a reader would decode as RFC 2047, written as RFC 2047 encoded words.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, Compat32
from email.utils import format_datetime, formataddr, quote
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from processor.addrspec import PLAIN_ADDR_SPEC
from processor.config import CommitteeConfig
from processor.errors import ConfigError, PermanentError
from processor.models import Decision, InboundEmail, Meeting, Mode, ReplyKind

LOOP_HEADER: Final = "X-Attendance-Processor"

REPLY_KINDS: Final[tuple[ReplyKind, ...]] = get_args(ReplyKind)
# Kinds that talk about one meeting and make no sense without it.
NEEDS_MEETING: Final[frozenset[ReplyKind]] = frozenset(
    {
        "confirmed_in_person",
        "confirmed_online",
        "waitlisted",
        "clarification_mode",
        "cancelled",
        "changed",
        "already_registered",
        "promoted",
        "reminder",
    }
)
# Kinds sent to someone who holds (or waits for) a place, so "reply cancel" applies.
HOLDS_PLACE: Final[frozenset[ReplyKind]] = frozenset(
    {
        "confirmed_in_person",
        "confirmed_online",
        "waitlisted",
        "changed",
        "already_registered",
        "promoted",
        "reminder",
    }
)
ICS_KINDS: Final[frozenset[ReplyKind]] = frozenset({"confirmed_in_person", "changed", "promoted"})

MAX_REFERENCES = 20  # RFC 5322 3.6.4 allows trimming; keep the root and the latest
MAX_SUBJECT = 200
MAX_NAME = 80
# Printable ASCII only: a control character or an encoded word has no place in a msg-id.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>")
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|aw|sv|antw|ref)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class WirePolicy(Compat32):
    """compat32 writing what SMTP's policy writes: CRLF, no "From " mangling.

    The modern policy's header objects cost ten times more; `_header` and `_address` do
    its work here. Most headers are short ASCII lines, which need no folding.
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        """`name: value` as bytes, folded by compat32 unless it is one short ASCII line."""
        limit = self.max_line_length
        if (
            isinstance(value, str)
            and (limit is None or len(name) + len(value) + 2 <= limit)
            and value.isascii()
            and value.isprintable()
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE: Final = WirePolicy(linesep="\r\n", mangle_from_=False)
MAX_7BIT_LINE = 78  # longer lines, or any "=_" (our boundaries' start), go quoted-printable


@dataclass(frozen=True)
class ComposedReply:
    """A reply as it is queued, sent and filed: its Message-ID and its bytes (CRLF)."""

    message_id: str
    payload: bytes

    def message(self) -> EmailMessage:
        """The reply parsed back, for reading its headers and parts.

        Lines end in "\\n" inside, as in a message built in memory; SMTP's policy writes
        them as CRLF again.
        """
        return message_from_bytes(self.payload.replace(b"\r\n", b"\n"), policy=SMTP)


@dataclass(frozen=True)
class RenderedReply:
    """The three rendered parts of one reply."""

    subject: str  # the summary line, used when the resident's subject is empty
    text: str
    html: str


# --- templates -------------------------------------------------------------------------


def templates_dir() -> Path:
    """The reply templates: the repository checkout's `templates/`, else package data."""
    checkout = Path(__file__).resolve().parents[1] / "templates"
    if checkout.is_dir():
        return checkout
    packaged = Path(str(resources.files("processor") / "templates"))
    if packaged.is_dir():
        return packaged
    raise ConfigError("templates", f"reply templates not found in {checkout} or {packaged}")


@lru_cache(maxsize=4)
def make_environment(directory: Path | None = None) -> Environment:
    """A Jinja2 environment: strict about missing values, escaping HTML templates only."""
    return Environment(
        loader=FileSystemLoader(str(directory or templates_dir())),
        undefined=StrictUndefined,
        # Template names end in ".html.j2"; select_autoescape matches name endings.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process: checking each file's mtime on every
        # render was nine stat calls a reply.
        auto_reload=False,
    )


def render_reply(
    kind: ReplyKind, context: dict[str, Any], env: Environment | None = None
) -> RenderedReply:
    """Render the subject, text and HTML templates of `kind` with `context`."""
    env = env or make_environment()
    subject = env.get_template(f"{kind}.subject.txt.j2").render(context)
    return RenderedReply(
        subject=one_line(subject, MAX_SUBJECT),
        text=env.get_template(f"{kind}.txt.j2").render(context).strip() + "\n",
        html=env.get_template(f"{kind}.html.j2").render(context).strip() + "\n",
    )


# --- formatting ------------------------------------------------------------------------


# In ASCII, the control characters (category C) and the spaces other than " " are
# these; `translate` clears them in one pass, as the general loop below would.
_ASCII_CONTROLS: Final = dict.fromkeys([*range(32), 127], " ")


def one_line(value: str, limit: int) -> str:
    """`value` as a single line without control characters, at most `limit` characters."""
    if value.isascii():  # most names and subjects, and rendered lines ending in "\n"
        cleaned = value.translate(_ASCII_CONTROLS)
    else:
        cleaned = "".join(
            " " if unicodedata.category(ch).startswith("C") or ch.isspace() else ch for ch in value
        )
    return " ".join(cleaned.split())[:limit].strip()


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    suffix = "am" if moment.hour < 12 else "pm"
    return f"{hour}:{moment.minute:02d}{suffix}" if moment.minute else f"{hour}{suffix}"


def format_day(moment: datetime) -> str:
    """E.g. "Thursday 10 December 2026" (names spelt out here, not by the locale)."""
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def format_when(start: datetime, end: datetime, tz: tzinfo) -> str:
    """E.g. "Thursday 10 December 2026, 6:30pm to 8:30pm", in the committee's time zone."""
    s, e = start.astimezone(tz), end.astimezone(tz)
    if s.date() == e.date():
        return f"{format_day(s)}, {_clock(s)} to {_clock(e)}"
    return f"{format_day(s)}, {_clock(s)} to {format_day(e)}, {_clock(e)}"


def _places(party_size: int) -> str:
    if party_size <= 1:
        return "1 (just you)"
    others = party_size - 1
    return f"{party_size} (you and {others} other {'person' if others == 1 else 'people'})"


# --- headers ---------------------------------------------------------------------------


def reply_message_id(inbound_message_id: str, kind: str, domain: str) -> str:
    """A Message-ID derived from what we answer, so a retried send carries the same one."""
    digest = hashlib.sha256(f"{inbound_message_id}\0{kind}".encode()).hexdigest()[:32]
    return f"<{digest}.reply@{domain}>"


def reply_subject(original: str, fallback: str) -> str:
    """ "Re: <original>", never "Re: Re:", on one line; `fallback` when there was none."""
    cleaned = _REPLY_PREFIX.sub("", one_line(original, 1000)).strip()
    if not cleaned:
        return one_line(fallback, MAX_SUBJECT)
    return f"Re: {cleaned[:MAX_SUBJECT]}"


def thread_references(references: Sequence[str], message_id: str) -> list[str]:
    """References for a reply: theirs plus the message answered, well-formed, trimmed."""
    ids: list[str] = []
    for candidate in (*references, message_id):
        value = candidate.strip()
        if _MESSAGE_ID.fullmatch(value) and value not in ids:
            ids.append(value)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return ids


def _header(value: str, name: str) -> str | Header:
    """`value` (one line) as written: as is when plain ASCII, else RFC 2047 encoded words.

    A literal "=?" is encoded too: readers decode encoded words, and one carrying CR LF
    would otherwise come back as a header of its own. So is a word too long to fold.
    """
    if (
        value.isascii()
        and "=?" not in value
        and max(map(len, value.split()), default=0) <= MAX_7BIT_LINE - 2
    ):
        return value
    return Header(value, "utf-8", header_name=name)


def _address(addr_spec: str, display_name: str, name: str) -> str | Header:
    """The `name` header for `display_name <addr_spec>`; PermanentError if it is no address."""
    spec = _addr_spec(addr_spec)
    phrase = one_line(display_name, MAX_NAME)
    if not phrase or (phrase.isascii() and "=?" not in phrase):
        return formataddr((phrase, spec))  # quotes and escapes the name where needed
    header = Header(phrase, "utf-8", header_name=name)
    header.append(f"<{spec}>", "us-ascii")
    return header


_PLAIN_ADDRESS: Final = re.compile(PLAIN_ADDR_SPEC)


def _addr_spec(addr_spec: str) -> str:
    """`addr_spec` as a header writes it, checked; PermanentError if it is no address."""
    spec = addr_spec.strip()
    if _PLAIN_ADDRESS.fullmatch(spec):  # most residents: the parser would write it as is
        return spec
    return _parsed_addr_spec(spec)


@lru_cache(maxsize=64)  # mostly the committee's own address, in every reply
def _parsed_addr_spec(addr_spec: str) -> str:
    try:
        address = Address(addr_spec=addr_spec)
        spec = address.addr_spec
        if not address.domain.isascii():  # RFC 5890: a header carries the A-label
            local = spec.rpartition("@")[0]  # quoted where it must be
            spec = f"{local}@{address.domain.encode('idna').decode('ascii')}"
    except (ValueError, IndexError, HeaderParseError, UnicodeError) as exc:
        raise PermanentError(f"cannot reply to address {addr_spec!r}: {exc}") from exc
    return spec


def _boundary(message_id: str, role: str) -> str:
    """A MIME boundary derived from the reply, so the same reply is the same bytes.

    It starts "=_", which quoted-printable never writes and `_text_part` never leaves
    in a 7bit part, so no part can contain it (RFC 2046 section 5.1.1).
    """
    digest = hashlib.sha256(f"{message_id}\0{role}".encode()).hexdigest()[:32]
    return f"=_{role}_{digest}"


# A MIME entity as the generator would write it: (name, value) headers, and the body as
# wire bytes. Written here rather than by email.generator, which costs half of a
# reply's composing; `WIRE.fold_binary` still writes every header, and a test holds
# the bytes equal to the generator's for every kind of reply.
Part = tuple[list[tuple[str, "str | Header"]], bytes]
_NEWLINE = re.compile(r"\r\n|\r|\n")


def _params(**params: str) -> str:
    """`; name="value"` for each parameter, quoted as Message.add_header quotes them."""
    return "".join(f'; {name}="{quote(value)}"' for name, value in params.items())


def _text_part(subtype: str, content: str, **params: str) -> Part:
    """A utf-8 text part: 7bit when it is short-lined ASCII, else quoted-printable."""
    content_type = f"text/{subtype}{_params(charset='utf-8', **params)}"
    lines = content.splitlines()
    if (
        content.isascii()
        and "=_" not in content
        and max(map(len, lines), default=0) <= MAX_7BIT_LINE
    ):
        encoding, payload = "7bit", content
    else:
        payload = binascii.b2a_qp(content.encode("utf-8"), istext=True).decode("ascii")
        encoding = "quoted-printable"
    headers: list[tuple[str, str | Header]] = [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", encoding),
    ]
    return headers, _crlf(payload).encode("ascii")


def _crlf(text: str) -> str:
    """Every line end as CRLF: a `replace` where there are only LFs (the templates'
    output, nearly always), a tenth of the regular expression's cost."""
    return _NEWLINE.sub("\r\n", text) if "\r" in text else text.replace("\n", "\r\n")


def _multipart(
    headers: list[tuple[str, str | Header]], subtype: str, boundary: str, parts: list[Part]
) -> Part:
    """`headers` and a Content-Type for `parts`, delimited by `boundary` (RFC 2046 5.1)."""
    delimiter = f"--{boundary}".encode("ascii")
    body = b"\r\n".join(delimiter + b"\r\n" + _entity(part) for part in parts)
    content_type = f"multipart/{subtype}{_params(boundary=boundary)}"
    return [*headers, ("Content-Type", content_type)], body + b"\r\n" + delimiter + b"--\r\n"


def _entity(part: Part) -> bytes:
    headers, body = part
    return b"".join(WIRE.fold_binary(name, value) for name, value in headers) + b"\r\n" + body


# --- the reply -------------------------------------------------------------------------


def _mode_for(kind: ReplyKind, decision: Decision) -> Mode | None:
    if kind == "confirmed_in_person":
        return "in_person"
    if kind == "confirmed_online":
        return "online"
    return decision.mode


def _meeting_view(meeting: Meeting, tz: tzinfo) -> dict[str, str]:
    return {
        "id": meeting.id,
        "title": meeting.title,
        "when": format_when(meeting.start, meeting.end, tz),
        "venue": meeting.venue,
    }


def build_context(
    kind: ReplyKind,
    *,
    decision: Decision,
    meeting: Meeting | None,
    open_meetings: Sequence[Meeting],
    committee: CommitteeConfig,
    join_url: str | None = None,
    resident_name: str | None = None,
    has_ics: bool = False,
) -> dict[str, Any]:
    """The values the templates see: every key always present (StrictUndefined)."""
    mode = _mode_for(kind, decision)
    party_size = max(1, decision.party_size or 1)
    contact = committee.contact or committee.address
    # Only a Teams https link becomes a link; anything else would be an odd href.
    safe_join = join_url if join_url and join_url.startswith("https://") else None
    return {
        "kind": kind,
        "committee": {
            "name": committee.name,
            "address": committee.address,
            "contact": contact,
            "contact_is_address": "@" in contact and " " not in contact.strip(),
        },
        "name": one_line(resident_name or "", MAX_NAME) or None,
        "meeting": _meeting_view(meeting, committee.timezone) if meeting else None,
        "mode": mode,
        "party_size": party_size if mode == "in_person" else None,
        "places": _places(party_size),
        "join_url": safe_join,
        "open_meetings": [_meeting_view(m, committee.timezone) for m in open_meetings],
        "holds_place": kind in HOLDS_PLACE,
        "has_ics": has_ics,
    }


def compose_reply(
    kind: ReplyKind,
    *,
    email: InboundEmail,
    decision: Decision,
    meeting: Meeting | None,
    open_meetings: Sequence[Meeting],
    committee: CommitteeConfig,
    message_id: str,
    now: datetime,
    join_url: str | None = None,
    resident_name: str | None = None,
    ics_sequence: int = 0,
    env: Environment | None = None,
) -> ComposedReply:
    """The reply to `email`: text + HTML (+ .ics for in-person places), threaded, marked."""
    if kind in NEEDS_MEETING and meeting is None:
        raise PermanentError(f"a {kind} reply needs a meeting, and none was given")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    mode = _mode_for(kind, decision)
    with_ics = meeting is not None and kind in ICS_KINDS and mode == "in_person"
    context = build_context(
        kind,
        decision=decision,
        meeting=meeting,
        open_meetings=open_meetings,
        committee=committee,
        join_url=join_url,
        resident_name=resident_name,
        has_ics=with_ics,
    )
    rendered = render_reply(kind, context, env)

    attachment = None
    if with_ics and meeting is not None:
        from processor.ics import build_ics  # icalendar: only in-person replies need it

        ics = build_ics(
            meeting,
            sender=email.sender or email.reply_to,
            domain=committee.domain,
            now=now,
            description=_ics_description(context),
            organiser_name=committee.name,
            organiser_address=committee.address,
            sequence=ics_sequence,
        )
        attachment = _text_part("calendar", ics.decode("utf-8"), method="PUBLISH")
        filename = f"{re.sub(r'[^A-Za-z0-9._-]', '-', meeting.id)}.ics"
        attachment[0].append(("Content-Disposition", f"attachment{_params(filename=filename)}"))
    return threaded_reply(
        committee=committee,
        email=email,
        message_id=message_id,
        subject=reply_subject(email.subject, rendered.subject),
        name=context["name"],
        text=rendered.text,
        html=rendered.html,
        now=now,
        attachment=attachment,
    )


def threaded_reply(
    *,
    committee: CommitteeConfig,
    email: InboundEmail,
    message_id: str,
    subject: str,
    name: str | None,
    text: str,
    html: str,
    now: datetime,
    attachment: Part | None = None,
) -> ComposedReply:
    """A reply to `email` as every reply is written: threaded, marked automatic, text and
    HTML (and an attachment), the resident's words (subject, name) written literally."""
    headers: list[tuple[str, str | Header]] = [
        ("From", _address(committee.address, committee.name, "From")),
        ("To", _address(email.reply_to, name or "", "To")),
        ("Subject", _header(subject, "Subject")),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
    ]
    if _MESSAGE_ID.fullmatch(email.message_id.strip()):
        headers.append(("In-Reply-To", email.message_id.strip()))
    references = thread_references(email.references, email.message_id)
    if references:
        headers.append(("References", " ".join(references)))
    # RFC 3834 section 5: mark the reply automatic so other responders stay quiet;
    # X-Auto-Response-Suppress does the same for Exchange; LOOP_HEADER spots our own mail.
    headers += [
        ("Auto-Submitted", "auto-replied"),
        ("X-Auto-Response-Suppress", "All"),
        (LOOP_HEADER, "1"),
        ("MIME-Version", "1.0"),
    ]
    bodies = [_text_part("plain", text), _text_part("html", html)]
    if attachment is not None:
        alternative = _multipart([], "alternative", _boundary(message_id, "alt"), bodies)
        reply = _multipart(
            headers, "mixed", _boundary(message_id, "mix"), [alternative, attachment]
        )
    else:
        reply = _multipart(headers, "alternative", _boundary(message_id, "alt"), bodies)
    return ComposedReply(message_id=message_id, payload=_entity(reply))


def _ics_description(context: dict[str, Any]) -> str:
    committee = context["committee"]
    return (
        f"Public meeting of the {committee['name']}. Places booked: {context['places']}. "
        f"To cancel, reply to our email with the word cancel. "
        f"Access needs: contact {committee['contact']}."
    )
