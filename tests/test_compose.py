"""Composing replies: every kind renders, residents' words stay inert, headers thread."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, compat32, default
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import UndefinedError

from processor.compose import (
    _PLAIN_ADDRESS,
    LOOP_HEADER,
    REPLY_KINDS,
    WIRE,
    ComposedReply,
    _addr_spec,
    _crlf,
    build_context,
    compose_reply,
    format_when,
    make_environment,
    one_line,
    render_reply,
    reply_message_id,
    reply_subject,
    templates_dir,
    thread_references,
)
from processor.config import CommitteeConfig, load_config
from processor.errors import PermanentError
from processor.models import Decision, InboundEmail, Meeting, Mode, ReplyKind
from processor.plan import reply_item
from processor.review import compose_rejection

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)
JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"
COMMITTEE = CommitteeConfig(
    name="Crime and Disorder Committee",
    address="cdc@example.gov.uk",
    timezone=LONDON,
    contact="access@example.gov.uk",
    replies_per_sender_per_day=5,
)
DECEMBER = Meeting(
    id="cdc-2026-12",
    title="Crime and Disorder Committee, December",
    start=datetime(2026, 12, 10, 18, 30, tzinfo=LONDON),
    end=datetime(2026, 12, 10, 20, 30, tzinfo=LONDON),
    venue="Council Chamber, Town Hall",
    in_person_capacity=40,
    online_capacity=200,
)
JANUARY = replace(
    DECEMBER,
    id="cdc-2027-01",
    title="Crime and Disorder Committee, January",
    start=datetime(2027, 1, 14, 18, 0, tzinfo=LONDON),
    end=datetime(2027, 1, 14, 20, 0, tzinfo=LONDON),
)
HOSTILE = "<script>alert(1)</script> {{ 7*7 }} {% if true %}evaluated{% endif %}"


REPO = Path(__file__).resolve().parents[1]


def _inbound(**changes: object) -> InboundEmail:
    base = InboundEmail(
        message_id="<request-1@example.org>",
        sender="jo@example.org",
        display_name="Jo Bloggs",
        reply_to="jo.replies@example.org",
        subject="Thursday's meeting",
        date=NOW,
        in_reply_to=None,
        references=("<root@example.org>",),
        headers=(),
        content_type="text/plain",
        text="I'd like to come. <b>raw resident html</b>",
        new_text="I'd like to come. <b>raw resident html</b>",
        signature=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _composed(
    kind: ReplyKind = "confirmed_in_person",
    mode: Mode | None = "in_person",
    *,
    email: InboundEmail | None = None,
    meeting: Meeting | None = DECEMBER,
    join_url: str | None = JOIN_URL,
    name: str | None = "Jo Bloggs",
    party_size: int | None = 3,
    committee: CommitteeConfig = COMMITTEE,
) -> ComposedReply:
    decision = Decision(
        outcome="confirmed",
        reason="test",
        rule="test",
        meeting_id=meeting.id if meeting else None,
        mode=mode,
        party_size=party_size,
        reply_kind=kind,
    )
    return compose_reply(
        kind,
        email=email or _inbound(),
        decision=decision,
        meeting=meeting,
        open_meetings=[DECEMBER, JANUARY],
        committee=committee,
        message_id=reply_message_id("<request-1@example.org>", kind, committee.domain),
        now=NOW,
        join_url=join_url,
        resident_name=name,
    )


def _compose(
    kind: ReplyKind = "confirmed_in_person", mode: Mode | None = "in_person", **changes: Any
) -> EmailMessage:
    """The reply as a reader gets it: its bytes parsed back."""
    return _composed(kind, mode, **changes).message()


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _attachments(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_attachments())


def test_it_has_three_templates_for_every_reply_kind() -> None:
    assert set(REPLY_KINDS) == set(get_args(ReplyKind))
    folder = templates_dir()
    for kind in REPLY_KINDS:
        for suffix in ("subject.txt.j2", "txt.j2", "html.j2"):
            assert (folder / f"{kind}.{suffix}").is_file(), f"{kind}.{suffix}"


@pytest.mark.parametrize("mode", ["in_person", "online"])
@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_it_renders_every_kind_in_both_modes(kind: ReplyKind, mode: Mode) -> None:
    message = _compose(kind, mode)

    text, html = _text(message), _html(message)
    assert text.startswith("Dear Jo Bloggs,\n\n")
    assert "access needs" in text and "access@example.gov.uk" in text
    assert "Crime and Disorder Committee" in text
    assert html.startswith("<!DOCTYPE html>")
    assert 'href="mailto:access@example.gov.uk"' in html
    assert "{{" not in text + html and "{%" not in text + html
    if kind != "clarification_meeting":
        assert DECEMBER.title in text and DECEMBER.title in html
    assert message["Subject"] == "Re: Thursday's meeting"


@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_it_renders_kinds_that_allow_it_without_a_meeting(kind: ReplyKind) -> None:
    if kind in ("closed", "referred", "speak_acknowledged", "no_registration"):
        message = _compose(kind, None, meeting=None, name=None)
        assert _text(message).startswith("Hello,\n\n")
    elif kind == "clarification_meeting":
        assert DECEMBER.title in _text(_compose(kind, None, meeting=None))
    else:
        with pytest.raises(PermanentError, match="needs a meeting"):
            _compose(kind, None, meeting=None)


def test_it_says_when_where_and_how_many_for_an_in_person_place() -> None:
    text = _text(_compose("confirmed_in_person"))

    assert "Thursday 10 December 2026, 6:30pm to 8:30pm" in text
    assert "Council Chamber, Town Hall" in text
    assert "3 (you and 2 other people)" in text
    assert "reply to this email with the word cancel" in text
    assert "Teams" not in text


def test_it_gives_the_join_link_for_online_places_when_known() -> None:
    message = _compose("confirmed_online", "online")
    assert JOIN_URL in _text(message)
    assert f'href="{JOIN_URL}"' in _html(message)
    assert "online on Microsoft Teams" in _text(message)
    assert "Places" not in _text(message)


def test_it_promises_a_separate_invitation_when_the_link_is_unknown() -> None:
    message = _compose("confirmed_online", "online", join_url=None)
    assert "your teams invitation will arrive in a separate email" in _text(message).lower()
    assert 'href="https://teams' not in _html(message)


def test_it_never_links_a_join_url_that_is_not_https() -> None:
    html = _html(_compose("confirmed_online", "online", join_url="javascript:alert(1)"))
    assert "javascript:" not in html


def test_it_lists_the_open_meetings_when_asking_which() -> None:
    text = _text(_compose("clarification_meeting", None, meeting=None))
    assert "Crime and Disorder Committee, December: Thursday 10 December 2026, 6:30pm" in text
    assert "Crime and Disorder Committee, January: Thursday 14 January 2027, 6pm to 8pm" in text


def test_it_asks_in_person_or_online() -> None:
    text = _text(_compose("clarification_mode", None))
    assert "in person or online" in text


def test_it_offers_online_to_the_waitlisted() -> None:
    text = _text(_compose("waitlisted"))
    assert "waiting list" in text
    assert "reply to this email with the word online" in text


def test_it_tells_only_place_holders_how_to_cancel() -> None:
    assert "word cancel" in _text(_compose("confirmed_online", "online"))
    assert "word cancel" not in _text(_compose("referred", None))
    assert "word cancel" not in _text(_compose("cancelled"))


@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_it_keeps_a_hostile_name_inert(kind: ReplyKind) -> None:
    message = _compose(kind, "online", name=HOSTILE)

    html, text = _html(message), _text(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in text and "49" not in text
    assert "{% if true %}evaluated{% endif %}" in text


def test_it_keeps_a_hostile_subject_inert() -> None:
    message = _compose(email=_inbound(subject=HOSTILE))
    assert message["Subject"] == f"Re: {HOSTILE}"
    assert "49" not in _text(message) + _html(message)


@pytest.mark.parametrize(
    "subject",
    ["Hello\r\nBcc: victim@example.net", "Hello\nBcc: victim@example.net", "Hi\rBcc: v@x.net"],
)
def test_it_lets_no_header_in_through_the_subject(subject: str) -> None:
    raw = _composed(email=_inbound(subject=subject)).payload

    parsed = message_from_bytes(raw, policy=default)
    assert parsed["Bcc"] is None
    assert not re.search(rb"^Bcc:", raw, re.MULTILINE | re.IGNORECASE)
    assert str(parsed["Subject"]).startswith("Re: Hello") or "Hi" in str(parsed["Subject"])


def test_it_lets_no_header_in_through_the_name() -> None:
    raw = _composed(name="Eve\r\nBcc: victim@example.net").payload

    parsed = message_from_bytes(raw, policy=default)
    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].addr_spec == "jo.replies@example.org"


def test_it_refuses_a_reply_address_carrying_a_header() -> None:
    with pytest.raises(PermanentError, match="cannot reply"):
        _compose(email=_inbound(reply_to="jo@example.org\r\nBcc: victim@example.net"))


def test_it_replies_to_the_reply_to_address_from_the_committee() -> None:
    message = _compose()
    assert message["To"].addresses[0].addr_spec == "jo.replies@example.org"
    assert message["From"].addresses[0].addr_spec == "cdc@example.gov.uk"
    assert message["From"].addresses[0].display_name == "Crime and Disorder Committee"


def test_it_threads_the_reply() -> None:
    message = _compose()
    assert message["In-Reply-To"] == "<request-1@example.org>"
    assert message["References"].split() == ["<root@example.org>", "<request-1@example.org>"]


def test_it_trims_long_reference_chains_keeping_the_root() -> None:
    chain = tuple(f"<m{i}@example.org>" for i in range(50))
    references = _compose(email=_inbound(references=chain))["References"].split()

    assert len(references) == 20
    assert references[0] == "<m0@example.org>"
    assert references[-1] == "<request-1@example.org>"
    assert references[-2] == "<m49@example.org>"


def test_it_drops_malformed_references() -> None:
    refs = ("<good@example.org>", "not-an-id", "<bad id@x>")
    message = _compose(email=_inbound(references=refs))
    assert message["References"].split() == ["<good@example.org>", "<request-1@example.org>"]


def test_it_marks_the_reply_automatic() -> None:
    message = _compose()
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message[LOOP_HEADER] == "1"
    assert message["Message-ID"] == reply_message_id(
        "<request-1@example.org>", "confirmed_in_person", "example.gov.uk"
    )
    assert message["Date"].datetime == NOW


def test_it_derives_stable_message_ids_on_our_domain() -> None:
    first = reply_message_id("<a@b>", "confirmed_online", "example.gov.uk")
    assert first == reply_message_id("<a@b>", "confirmed_online", "example.gov.uk")
    assert first != reply_message_id("<a@b>", "cancelled", "example.gov.uk")
    assert first != reply_message_id("<c@b>", "confirmed_online", "example.gov.uk")
    assert re.fullmatch(r"<[0-9a-f]{32}\.reply@example\.gov\.uk>", first)


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Thursday", "Re: Thursday"),
        ("Re: Thursday", "Re: Thursday"),
        ("RE: Re: re:Thursday", "Re: Thursday"),
        ("AW: Thursday", "Re: Thursday"),
        ("  Tab\tand  spaces ", "Re: Tab and spaces"),
        ("", "Summary"),
        ("Re:", "Summary"),
    ],
)
def test_it_makes_one_re_subject(original: str, expected: str) -> None:
    assert reply_subject(original, "Summary") == expected


def test_it_uses_the_summary_subject_when_the_resident_gave_none() -> None:
    message = _compose(email=_inbound(subject=""))
    assert message["Subject"] == f"Your place at {DECEMBER.title} is confirmed"


def test_it_quotes_nothing_of_the_residents_message() -> None:
    message = _compose()
    everything = message.as_string() + _text(message) + _html(message)
    assert "raw resident html" not in everything
    assert "I'd like to come" not in everything


def test_it_escapes_html_only_in_html() -> None:
    committee = replace(COMMITTEE, name="Crime & Disorder Committee")
    message = _compose(committee=committee)
    assert "Crime & Disorder Committee" in _text(message)
    assert "Crime &amp; Disorder Committee" in _html(message)


def test_it_fails_loudly_on_a_missing_template_value(tmp_path: Path) -> None:
    for suffix in ("subject.txt.j2", "txt.j2", "html.j2"):
        (tmp_path / f"referred.{suffix}").write_text("{{ no_such_value }}", encoding="utf-8")
    with pytest.raises(UndefinedError):
        render_reply("referred", {}, make_environment(tmp_path))


@pytest.mark.parametrize(
    ("kind", "mode", "attached"),
    [
        ("confirmed_in_person", "in_person", True),
        ("changed", "in_person", True),
        ("promoted", "in_person", True),
        ("confirmed_online", "online", False),
        ("changed", "online", False),
        ("cancelled", "in_person", False),
        ("reminder", "in_person", False),
    ],
)
def test_it_attaches_a_calendar_file_only_to_in_person_places(
    kind: ReplyKind, mode: Mode, attached: bool
) -> None:
    message = _compose(kind, mode)
    files = _attachments(message)
    assert len(files) == (1 if attached else 0)
    if attached:
        (ics,) = files
        assert ics.get_content_type() == "text/calendar"
        assert ics.get_param("method") == "PUBLISH"
        assert ics.get_filename() == "cdc-2026-12.ics"
        assert message.get_content_type() == "multipart/mixed"
    else:
        assert message.get_content_type() == "multipart/alternative"


def test_it_survives_a_round_trip_through_bytes() -> None:
    reply = _composed()
    parsed = message_from_bytes(reply.payload, policy=default)
    assert parsed["Message-ID"] == reply.message_id
    assert parsed["Subject"] == "Re: Thursday's meeting"
    body = parsed.get_body(("plain",))
    assert body is not None and "6:30pm to 8:30pm" in body.get_content()


@pytest.mark.parametrize("kind", REPLY_KINDS)
@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("Jo Bloggs", "Thursday's meeting"),
        ("Zoë Ångström", "Réunion du conseil: 10 décembre"),
        ("=?utf-8?q?Eve?= <eve@example.net>", "=?utf-8?q?Hi=0D=0ABcc:_victim@example.net?="),
        (None, "Re: Re: " + "a long subject " * 12),
    ],
)
def test_it_writes_the_bytes_the_email_generator_would(
    kind: ReplyKind, name: str | None, subject: str
) -> None:
    # compose.py writes MIME itself (the generator cost half of composing). Parsed with
    # compat32 and written again by the stdlib generator under the same policy, every
    # kind of reply, in person (with its .ics) or online, must come back byte for byte.
    mode: Mode = "in_person" if kind in ("confirmed_in_person", "changed", "promoted") else "online"
    reply = _composed(kind, mode, name=name, email=_inbound(subject=subject, display_name=name))
    parsed = message_from_bytes(reply.payload, policy=compat32)
    assert parsed.as_bytes(policy=WIRE) == reply.payload
    assert parsed.is_multipart() and parsed.defects == []


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            datetime(2026, 12, 10, 18, 30, tzinfo=LONDON),
            datetime(2026, 12, 10, 20, 30, tzinfo=LONDON),
            "Thursday 10 December 2026, 6:30pm to 8:30pm",
        ),
        (  # UTC input in summer: shown in British Summer Time
            datetime(2026, 6, 4, 17, 0, tzinfo=UTC),
            datetime(2026, 6, 4, 18, 45, tzinfo=UTC),
            "Thursday 4 June 2026, 6pm to 7:45pm",
        ),
        (
            datetime(2026, 3, 2, 10, 0, tzinfo=LONDON),
            datetime(2026, 3, 2, 12, 15, tzinfo=LONDON),
            "Monday 2 March 2026, 10am to 12:15pm",
        ),
        (
            datetime(2026, 3, 2, 23, 0, tzinfo=LONDON),
            datetime(2026, 3, 3, 0, 30, tzinfo=LONDON),
            "Monday 2 March 2026, 11pm to Tuesday 3 March 2026, 12:30am",
        ),
    ],
)
def test_it_writes_dates_as_a_clerk_would(start: datetime, end: datetime, expected: str) -> None:
    assert format_when(start, end, LONDON) == expected


@pytest.mark.parametrize(
    ("name", "greeting"), [("  \t ", "Hello,"), ("Jo\r\nBloggs", "Dear Jo Bloggs,")]
)
def test_it_greets_on_one_line(name: str, greeting: str) -> None:
    assert _text(_compose(name=name)).splitlines()[0] == greeting


# --- the bytes on the wire -------------------------------------------------------------

TRICKY: dict[str, dict[str, Any]] = {
    "non-ASCII name": {"name": "Zoë O'Brien-Ñúñez"},
    "long non-ASCII name": {"name": "山田太郎" * 25},
    "apostrophes and HTML in the name": {"name": 'O\'Brien <b>&amp; "Jo" \\ Smith, Jr.'},
    "long subject": {"email": _inbound(subject="Please register me for the meeting " * 10)},
    "long non-ASCII subject": {"email": _inbound(subject="Réunion du comité — merci " * 12)},
    "many references": {
        "email": _inbound(references=tuple(f"<m{i}.{'x' * 40}@example.org>" for i in range(50)))
    },
    "non-ASCII committee": {"committee": replace(COMMITTEE, name="Comité & Sécurité")},
    "non-ASCII meeting": {"meeting": replace(DECEMBER, title="Comité — décembre", venue="Hôtel")},
    "no name": {"name": None},
}


def _reference(kind: ReplyKind, mode: Mode | None, **changes: Any) -> bytes:
    """The reply as compose_reply built it with the modern email API until 2026."""
    reply = _composed(kind, mode, **changes)
    email: InboundEmail = changes.get("email") or _inbound()
    committee: CommitteeConfig = changes.get("committee", COMMITTEE)
    meeting: Meeting | None = changes.get("meeting", DECEMBER)
    files = list(reply.message().iter_attachments())
    context = build_context(
        kind,
        decision=Decision(
            outcome="confirmed",
            reason="test",
            rule="test",
            meeting_id=meeting.id if meeting else None,
            mode=mode,
            party_size=3,
            reply_kind=kind,
        ),
        meeting=meeting,
        open_meetings=[DECEMBER, JANUARY],
        committee=committee,
        join_url=JOIN_URL,
        resident_name=changes.get("name", "Jo Bloggs"),
        has_ics=bool(files),
    )
    rendered = render_reply(kind, context)
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=committee.name, addr_spec=committee.address)
    message["To"] = Address(display_name=context["name"] or "", addr_spec=email.reply_to)
    message["Subject"] = reply_subject(email.subject, rendered.subject)
    message["Date"] = NOW
    message["Message-ID"] = reply.message_id
    message["In-Reply-To"] = email.message_id
    message["References"] = " ".join(thread_references(email.references, email.message_id))
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = "1"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    for ics in files:  # build_ics itself is checked in test_ics.py
        message.add_attachment(
            ics.get_content(),
            subtype="calendar",
            filename=ics.get_filename(),
            params={"method": "PUBLISH"},
        )
    return message.as_bytes()


def _meaning(raw: bytes) -> dict[str, Any]:
    """What a reader sees in `raw`: header values, the part tree, each part's content."""
    parsed = message_from_bytes(raw, policy=default)

    def tree(part: EmailMessage) -> dict[str, Any]:
        params = [(k, v) for k, v in part.get_params() or [] if k != "boundary" and "/" not in k]
        node: dict[str, Any] = {
            "type": part.get_content_type(),
            "params": sorted(params),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
        }
        if part.is_multipart():
            node["parts"] = [tree(p) for p in part.iter_parts()]
        else:
            node["content"] = part.get_content()
        return node

    # Folding may start a value on the next line; readers drop the leading space.
    headers = [(k, " ".join(str(v).split())) for k, v in parsed.items()]
    ignored = ("Content-Type", "Content-Transfer-Encoding", "MIME-Version")
    return {
        "headers": [(k, v) for k, v in headers if k not in ignored],
        "mime_version": parsed["MIME-Version"],
        "body": tree(parsed),
        "defects": [repr(d) for d in parsed.defects],
    }


@pytest.mark.parametrize("mode", ["in_person", "online"])
@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_it_says_what_the_modern_email_api_said(kind: ReplyKind, mode: Mode) -> None:
    assert _meaning(_composed(kind, mode).payload) == _meaning(_reference(kind, mode))


@pytest.mark.parametrize("kind", ["confirmed_in_person", "confirmed_online", "changed"])
@pytest.mark.parametrize("case", TRICKY)
def test_it_says_what_the_modern_email_api_said_of_tricky_input(kind: ReplyKind, case: str) -> None:
    mode: Mode = "online" if kind == "confirmed_online" else "in_person"
    changes = TRICKY[case]
    assert _meaning(_composed(kind, mode, **changes).payload) == _meaning(
        _reference(kind, mode, **changes)
    )


@pytest.mark.parametrize("case", TRICKY)
def test_it_writes_short_crlf_lines_of_ascii(case: str) -> None:
    raw = _composed(**TRICKY[case]).payload

    assert raw.isascii()  # non-ASCII goes in encoded words and quoted-printable, never 8bit
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines)
    assert max(len(line) for line in lines) <= 78


def test_it_writes_the_same_bytes_for_the_same_reply() -> None:
    first, again = _composed(), _composed()
    other = _composed("changed")  # another reply, so another Message-ID

    assert first.payload == again.payload
    assert first.message_id == reply_message_id(
        "<request-1@example.org>", "confirmed_in_person", "example.gov.uk"
    )
    boundaries = re.findall(rb'boundary="([^"]+)"', first.payload)
    assert len(boundaries) == 2
    assert not set(boundaries) & set(re.findall(rb'boundary="([^"]+)"', other.payload))


@pytest.mark.parametrize(
    ("changes", "ics_encoding"),
    [({}, "7bit"), ({"meeting": replace(DECEMBER, venue="Hôtel de Ville")}, "quoted-printable")],
)
def test_it_encodes_each_part_safely(changes: dict[str, Any], ics_encoding: str) -> None:
    message = _compose(name="Zoë", **changes)
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    (ics,) = _attachments(message)

    assert plain is not None and html is not None
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert ics["Content-Transfer-Encoding"] == ics_encoding
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Dear Zoë," in _text(message)
    assert str(ics.get_content()).startswith("BEGIN:VCALENDAR")


def test_it_keeps_a_boundary_like_name_from_ending_a_part() -> None:
    for boundary in re.findall(r'boundary="([^"]+)"', _composed().payload.decode()):
        name = f"--{boundary}--"[:80]
        message = _compose(name=name)
        assert len(list(message.walk())) == 5
        assert _text(message).startswith(f"Dear {name},")


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("=?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=", "Jo"),
        ("Hi", "=?utf-8?q?Eve=0D=0ABcc:_victim@example.net?="),
        ("Hi", "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBleGFtcGxlLm5ldA==?="),
        ("Hi\x0bBcc: a@b\x0cCc: c@d\x85Cc: e@f\u2028Cc: g@h", "Jo\x00\x1bBcc: x@y\u2029"),
        ("Re:\r\n\r\nBcc: victim@example.net", "Eve\r\n\r\nBcc: victim@example.net"),
    ],
)
def test_it_lets_no_header_in_through_encoded_words_or_controls(subject: str, name: str) -> None:
    raw = _composed(email=_inbound(subject=subject), name=name).payload
    parsed = message_from_bytes(raw, policy=default)

    assert set(parsed.keys()) == {
        "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
        "Auto-Submitted", "X-Auto-Response-Suppress", LOOP_HEADER, "MIME-Version",
        "Content-Type",
    }  # fmt: skip
    assert not re.search(rb"^(Bcc|Cc):", raw, re.MULTILINE | re.IGNORECASE)
    assert parsed["Subject"] == reply_subject(subject, "")  # read back as written
    (to,) = parsed["To"].addresses
    assert to.addr_spec == "jo.replies@example.org"
    # The modern parser keeps the fold between a phrase's encoded words as a space.
    assert to.display_name.replace(" ", "") == one_line(name, 80).replace(" ", "")

    resent = message_from_bytes(raw, policy=SMTP)  # as review.resend rewrites a reply
    del resent["Message-ID"]
    resent["Message-ID"] = "<resent@example.gov.uk>"
    assert not re.search(rb"^(Bcc|Cc):", resent.as_bytes(), re.MULTILINE | re.IGNORECASE)


@pytest.mark.parametrize("bad", ["<a\x01b@example.org>", "<aé@example.org>", "<a\x7f@x>"])
def test_it_threads_only_on_printable_message_ids(bad: str) -> None:
    message = _compose(email=_inbound(message_id=bad, references=(bad, "<root@example.org>")))
    assert message["In-Reply-To"] is None
    assert message["References"] == "<root@example.org>"


@pytest.mark.parametrize(
    ("reply_to", "written"),
    [
        ("jo@exämple.org", "jo@xn--exmple-cua.org"),  # RFC 5890 A-label
        ('"jo bloggs"@exämple.org', '"jo bloggs"@xn--exmple-cua.org'),
        ('"jo bloggs"@example.org', '"jo bloggs"@example.org'),
        ("  jo@example.org ", "jo@example.org"),
    ],
)
def test_it_writes_the_reply_address_as_headers_need_it(reply_to: str, written: str) -> None:
    message = _compose(email=_inbound(reply_to=reply_to))
    assert message["To"].addresses[0].addr_spec == written


@pytest.mark.parametrize("reply_to", ["jö@example.org", "", "not an address", "a@b@c"])
def test_it_refuses_an_address_it_cannot_write(reply_to: str) -> None:
    with pytest.raises(PermanentError, match="cannot reply"):
        _composed(email=_inbound(reply_to=reply_to))


def test_it_queues_the_composed_bytes_under_the_message_id() -> None:
    reply = _composed()
    item = reply_item(reply, "jo.replies@example.org")
    assert item.idempotency_key == f"reply:{reply.message_id}"
    assert item.payload == reply.payload
    assert item.kind == "reply" and item.recipient == "jo.replies@example.org"

    message = reply.message()  # a message built elsewhere still goes through
    assert reply_item(message, "x@example.org").idempotency_key == f"reply:{reply.message_id}"


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("=?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=", "Jo"),
        ("Hi", "=?utf-8?q?Eve=0D=0ABcc:_victim@example.net?="),
    ],
)
def test_a_staff_rejection_lets_no_header_in_either(subject: str, name: str) -> None:
    config = load_config(REPO / "config.example.toml")
    email = _inbound(subject=subject, display_name=name)
    row = {"meeting_id": "cdc-2026-12-10", "name": None}

    composed = compose_rejection(config, email, row, "Bins are on 0300 123 4567.", NOW)

    assert not re.search(rb"^(Bcc|Cc):", composed.payload, re.MULTILINE | re.IGNORECASE)
    parsed = message_from_bytes(composed.payload, policy=default)
    assert parsed["Subject"] == reply_subject(subject, "")
    assert parsed["In-Reply-To"] == "<request-1@example.org>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert "Bins are on 0300 123 4567." in _text(parsed)


def _one_line_in_general(value: str, limit: int) -> str:
    """`one_line` without its ASCII shortcut: what it must agree with."""
    cleaned = "".join(
        " " if unicodedata.category(ch).startswith("C") or ch.isspace() else ch for ch in value
    )
    return " ".join(cleaned.split())[:limit].strip()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60), st.integers(1, 80))
def test_the_ascii_shortcut_cleans_a_line_as_the_general_rule_does(value: str, limit: int) -> None:
    assert one_line(value, limit) == _one_line_in_general(value, limit)


@pytest.mark.parametrize("code", [*range(32), 127])
def test_every_ascii_control_character_becomes_a_space(code: int) -> None:
    assert one_line(f"a{chr(code)}b\n", 80) == _one_line_in_general(f"a{chr(code)}b\n", 80)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_PLAIN_ADDRESS, fullmatch=True))
def test_a_plain_address_is_written_as_the_header_parser_writes_it(address: str) -> None:
    # The shortcut takes only what the parser would write unchanged; anything else
    # still goes through the parser (and its checks).
    assert Address(addr_spec=address).addr_spec == address
    assert _addr_spec(f" {address} ") == address


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \r\n\t="), max_size=40))
def test_line_ends_become_crlf_as_the_regular_expression_makes_them(text: str) -> None:
    assert _crlf(text) == re.sub(r"\r\n|\r|\n", "\r\n", text)
