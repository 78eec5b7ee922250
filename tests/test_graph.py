"""The Graph client, Teams calendar, dry run and sendMail transport against the HTTPS fake."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from processor.auth import TokenProvider
from processor.config import parse_config
from processor.errors import PermanentError, TransientError
from processor.graph import ConcurrentChange, GraphCalendar, GraphClient, build_calendar
from processor.graph_dryrun import DryRunCalendar
from processor.graph_events import EventRequests, transaction_id
from processor.graph_transport import GraphTransport
from processor.models import Meeting
from processor.ports import Attendee
from tests.graphfake import GraphFake, graph_config

LONDON = ZoneInfo("Europe/London")
MEETING = Meeting(
    id="cdc-2026-12",
    title="Crime and Disorder Committee",
    start=datetime(2026, 12, 10, 18, 30, tzinfo=LONDON),
    end=datetime(2026, 12, 10, 20, 30, tzinfo=LONDON),
    venue="Council Chamber",
    in_person_capacity=40,
    online_capacity=100,
)


class Sleeps(list[float]):
    """Records the waits the client asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(fake: GraphFake, tmp_path: Path, **overrides: Any) -> tuple[GraphClient, Sleeps]:
    config = graph_config(fake, tmp_path, **overrides)
    sleeps = Sleeps()
    tokens = TokenProvider(config, http_client=fake.session())
    return GraphClient(config, tokens, session=fake.session(), sleep=sleeps), sleeps


def make_calendar(
    fake: GraphFake, tmp_path: Path, **overrides: Any
) -> tuple[GraphCalendar, Sleeps]:
    client, sleeps = make_client(fake, tmp_path, **overrides)
    organiser = graph_config(fake, tmp_path).organiser
    return GraphCalendar(client, EventRequests(organiser, "Crime and Disorder Committee")), sleeps


ORGANISER = "committee-organiser@council.example"


def patch_bodies(fake: GraphFake) -> list[dict[str, Any]]:
    return [call.json() for call in fake.requests("PATCH", "/events/")]


# --- creating, adopting, updating the event ---------------------------------------------


def test_it_creates_a_teams_event_with_hidden_attendees(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)

    ref = calendar.ensure_event(MEETING, None)

    [event] = graph_fake.user_events(ORGANISER)
    assert ref.event_id == event["id"]
    assert ref.etag == event["@odata.etag"]
    assert ref.join_url == event["onlineMeeting"]["joinUrl"]
    sent = graph_fake.requests("POST", "/events")[0].json()
    assert sent["isOnlineMeeting"] is True
    assert sent["onlineMeetingProvider"] == "teamsForBusiness"
    assert sent["hideAttendees"] is True
    assert sent["attendees"] == []
    assert sent["start"] == {"dateTime": "2026-12-10T18:30:00", "timeZone": "Europe/London"}
    assert sent["location"] == {"displayName": "Council Chamber"}
    assert sent["transactionId"] == transaction_id(ORGANISER, MEETING.id)
    assert "Crime and Disorder Committee" in sent["body"]["content"]


def test_it_escapes_config_text_in_the_event_body(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)

    calendar.ensure_event(replace(MEETING, title="Budget <script>x</script> & more"), None)

    body = graph_fake.requests("POST", "/events")[0].json()["body"]["content"]
    assert "<script>" not in body
    assert "&lt;script&gt;" in body


def test_it_does_not_create_a_second_event_when_a_create_is_retried(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)

    first = calendar.ensure_event(MEETING, None)
    second = calendar.ensure_event(MEETING, None)  # as after a lost 201

    assert first.event_id == second.event_id
    assert len(graph_fake.user_events(ORGANISER)) == 1
    assert len(graph_fake.requests("POST", "/events")) == 2


def test_it_gives_each_meeting_its_own_transaction_id() -> None:
    assert transaction_id(ORGANISER, "a") == transaction_id(ORGANISER.upper(), "a")
    assert transaction_id(ORGANISER, "a") != transaction_id(ORGANISER, "b")


def test_it_adopts_an_event_named_in_config_without_changing_it(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    staff = calendar.ensure_event(replace(MEETING, id="made-by-staff", title="Staff title"), None)
    graph_fake.log.clear()

    ref = calendar.ensure_event(replace(MEETING, teams_event_id=staff.event_id), None)

    assert ref == staff
    assert graph_fake.requests("POST") == []
    assert graph_fake.requests("PATCH") == []


def test_it_reports_an_adopted_event_that_does_not_exist(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)

    with pytest.raises(PermanentError, match="ErrorItemNotFound"):
        calendar.ensure_event(replace(MEETING, teams_event_id="AAMkAnope"), None)


def test_it_patches_the_event_when_the_config_changes(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)
    moved = replace(
        MEETING,
        title="Crime and Disorder Committee (rescheduled)",
        start=datetime(2026, 12, 11, 19, 0, tzinfo=LONDON),
        end=datetime(2026, 12, 11, 21, 0, tzinfo=LONDON),
    )

    updated = calendar.ensure_event(moved, ref)

    [event] = graph_fake.user_events(ORGANISER)
    assert event["subject"] == moved.title
    assert event["_start"] == moved.start
    assert updated.etag == event["@odata.etag"] != ref.etag
    [patch] = patch_bodies(graph_fake)
    assert "attendees" not in patch
    assert graph_fake.requests("PATCH")[0].header("if-match") == ref.etag


def test_it_reports_a_known_event_deleted_in_outlook(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, client = make_calendar(graph_fake, tmp_path)[0], make_client(graph_fake, tmp_path)[0]
    ref = calendar.ensure_event(MEETING, None)
    client.request("DELETE", f"/users/{ORGANISER}/events/{ref.event_id}")

    with pytest.raises(PermanentError, match="deleted in Outlook"):
        calendar.ensure_event(MEETING, ref)


def test_it_leaves_an_unchanged_event_alone(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)

    again = calendar.ensure_event(MEETING, ref)

    assert again == ref
    assert graph_fake.requests("PATCH") == []


def test_it_refuses_an_event_without_a_teams_link(graph_fake: GraphFake, tmp_path: Path) -> None:
    graph_fake.set_allowed_providers(ORGANISER, [])
    calendar, _ = make_calendar(graph_fake, tmp_path)

    with pytest.raises(PermanentError, match="allowedOnlineMeetingProviders"):
        calendar.ensure_event(MEETING, None)


def test_it_refuses_a_201_that_lacks_the_join_url(graph_fake: GraphFake, tmp_path: Path) -> None:
    graph_fake.omit_join_url_next()
    calendar, _ = make_calendar(graph_fake, tmp_path)

    with pytest.raises(PermanentError, match="does not allow Teams meetings"):
        calendar.ensure_event(MEETING, None)


def test_it_reads_the_allowed_online_meeting_providers(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    graph_fake.set_allowed_providers(ORGANISER, ["teamsForBusiness", "skypeForBusiness"])
    calendar, _ = make_calendar(graph_fake, tmp_path)

    assert calendar.allowed_providers() == ["teamsForBusiness", "skypeForBusiness"]


# --- attendees --------------------------------------------------------------------------


def test_it_adds_and_removes_attendees_in_one_patch_of_attendees_only(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)
    ref = calendar.update_attendees(
        ref, [Attendee("alice@example.org", "Alice"), Attendee("bob@example.org")], []
    )

    ref = calendar.update_attendees(ref, [Attendee("carol@example.org")], ["ALICE@example.org"])

    assert graph_fake.attendees(ORGANISER, ref.event_id) == ["bob@example.org", "carol@example.org"]
    bodies = patch_bodies(graph_fake)
    assert len(bodies) == 2
    assert all(set(body) == {"attendees"} for body in bodies)
    assert bodies[1]["attendees"][1] == {
        "emailAddress": {"address": "carol@example.org"},
        "type": "required",
    }
    [event] = graph_fake.user_events(ORGANISER)
    assert ref.etag == event["@odata.etag"]


def test_it_sends_nothing_when_the_attendees_already_match(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)
    ref = calendar.update_attendees(ref, [Attendee("alice@example.org")], [])

    calendar.update_attendees(ref, [Attendee("Alice@Example.ORG")], ["nobody@example.org"])

    assert len(patch_bodies(graph_fake)) == 1


def test_it_guards_the_patch_with_the_etag_it_just_read(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)

    calendar.update_attendees(ref, [Attendee("alice@example.org")], [])

    [patch] = graph_fake.requests("PATCH")
    assert patch.header("if-match") == ref.etag


def test_it_rereads_and_retries_after_a_412(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)
    graph_fake.conflict_next()

    calendar.update_attendees(ref, [Attendee("alice@example.org")], [])

    assert graph_fake.attendees(ORGANISER, ref.event_id) == ["alice@example.org"]
    patches = graph_fake.requests("PATCH")
    assert len(patches) == 2
    assert patches[0].header("if-match") != patches[1].header("if-match")


def test_it_gives_up_after_repeated_412s_as_transient(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, _ = make_calendar(graph_fake, tmp_path)
    ref = calendar.ensure_event(MEETING, None)
    graph_fake.conflict_next(10)

    with pytest.raises(ConcurrentChange):
        calendar.update_attendees(ref, [Attendee("alice@example.org")], [])

    assert graph_fake.attendees(ORGANISER, ref.event_id) == []
    assert isinstance(ConcurrentChange("x"), TransientError)


# --- throttling and errors ---------------------------------------------------------------


def test_it_waits_as_long_as_retry_after_says_and_succeeds(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    calendar, sleeps = make_calendar(graph_fake, tmp_path)
    graph_fake.fail_next(429, times=2, retry_after=3)

    ref = calendar.ensure_event(MEETING, None)

    assert sleeps == [3.0, 3.0]
    assert ref.join_url
    assert len(graph_fake.requests("POST", "/events")) == 3


def test_it_hands_a_long_retry_after_to_the_caller(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, sleeps = make_calendar(graph_fake, tmp_path, max_retry_after=30.0)
    graph_fake.fail_next(429, retry_after=120)

    with pytest.raises(TransientError) as caught:
        calendar.ensure_event(MEETING, None)

    assert caught.value.retry_after == 120.0
    assert sleeps == []
    assert graph_fake.user_events(ORGANISER) == []


def test_it_gives_up_on_a_503_storm_as_transient(graph_fake: GraphFake, tmp_path: Path) -> None:
    calendar, sleeps = make_calendar(graph_fake, tmp_path)
    graph_fake.fail_next(503, times=50)

    with pytest.raises(TransientError, match="ServiceUnavailable"):
        calendar.ensure_event(MEETING, None)

    assert sleeps == [1.0, 2.0, 4.0]
    assert len(graph_fake.requests("POST", "/events")) == 4


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "ErrorAccessDenied", PermanentError),
        (404, "ErrorItemNotFound", PermanentError),
        (400, "ErrorInvalidRequest", PermanentError),
        (400, "SomethingNew", PermanentError),
        (500, "generalException", TransientError),
        (409, "ErrorIrresolvableConflict", TransientError),
        (400, "MailboxConcurrency", TransientError),
        (502, "SomethingNew", TransientError),
    ],
)
def test_it_classifies_errors_by_their_code(
    graph_fake: GraphFake, tmp_path: Path, status: int, code: str, expected: type[Exception]
) -> None:
    client, _ = make_client(graph_fake, tmp_path)
    graph_fake.fail_next(status, code=code)

    with pytest.raises(expected) as caught:
        client.request("GET", f"/users/{ORGANISER}/calendar")

    assert code in str(caught.value)
    if expected is PermanentError:
        assert not isinstance(caught.value, TransientError)


def test_it_reports_an_unreachable_graph_as_transient(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    client, _ = make_client(graph_fake, tmp_path, base_url="https://127.0.0.1:9/v1.0")

    with pytest.raises(TransientError, match="unreachable"):
        client.request("GET", f"/users/{ORGANISER}/calendar")


# --- dry run -------------------------------------------------------------------------------


def test_it_writes_dry_run_requests_as_files_and_sends_nothing(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    out = tmp_path / "dry"
    calendar = DryRunCalendar(out, "https://graph.microsoft.com/v1.0", EventRequests(ORGANISER))

    ref = calendar.ensure_event(MEETING, None)
    calendar.update_attendees(ref, [Attendee("alice@example.org")], [])
    calendar.update_attendees(ref, [Attendee("bob@example.org")], ["alice@example.org"])

    files = sorted(p.name for p in out.glob("0*.json"))
    assert files == ["0001-post.json", "0002-patch.json", "0003-patch.json"]
    post = json.loads((out / "0001-post.json").read_text())
    assert post["method"] == "POST"
    assert post["url"] == f"https://graph.microsoft.com/v1.0/users/{ORGANISER}/events"
    assert post["body"]["transactionId"] == transaction_id(ORGANISER, MEETING.id)
    last = json.loads((out / "0003-patch.json").read_text())
    assert last["body"] == {
        "attendees": [{"emailAddress": {"address": "bob@example.org"}, "type": "required"}]
    }
    assert "Authorization" not in last["headers"]
    assert ref.join_url
    assert graph_fake.log == []


def test_it_builds_a_dry_run_calendar_without_credentials(tmp_path: Path) -> None:
    config = parse_config(
        {
            "committee": {"name": "CDC", "address": "cdc@council.example"},
            "mailbox": {"kind": "maildir", "path": "mail"},
            "smtp": {"kind": "file", "path": "out"},
            "graph": {"enabled": True, "dry_run": True, "organiser": ORGANISER},
        },
        source=tmp_path / "config.toml",
    )

    calendar = build_calendar(config)
    calendar.ensure_event(MEETING, None)

    assert isinstance(calendar, DryRunCalendar)
    assert list(config.graph.dry_run_path.glob("0001-post.json"))


def test_it_sends_valid_bodies_from_the_dry_run_template(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    # The dry-run body is the live body: replay it against the validating fake.
    client, _ = make_client(graph_fake, tmp_path)
    DryRunCalendar(tmp_path / "d", client.base_url, EventRequests(ORGANISER)).ensure_event(
        MEETING, None
    )
    request = json.loads((tmp_path / "d" / "0001-post.json").read_text())

    response = client.request("POST", f"/users/{ORGANISER}/events", json=request["body"])

    assert response.status_code == 201


# --- sendMail ------------------------------------------------------------------------------


def reply_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Crime and Disorder Committee <cdc@council.example>"
    message["To"] = "resident@example.org"
    message["Subject"] = "Re: Attending on Thursday"
    message["Message-ID"] = "<reply-1@council.example>"
    message["In-Reply-To"] = "<ask-1@example.org>"
    message["References"] = "<ask-1@example.org>"
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content("You are registered to attend online. Reply “cancel” to cancel.")
    message.add_alternative("<p>You are registered.</p>", subtype="html")
    message.add_attachment(
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text", "calendar", filename="meeting.ics"
    )
    return message


def test_it_sends_mail_as_mime_with_threading_headers_intact(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    client, _ = make_client(graph_fake, tmp_path)
    transport = GraphTransport(client, "cdc@council.example")
    message = reply_message()

    with transport.connect() as connection:
        connection.send(message)

    [call] = graph_fake.requests("POST", "/sendMail")
    assert call.path == "/v1.0/users/cdc@council.example/sendMail"
    assert call.header("content-type") == "text/plain"
    [record] = graph_fake.sent["cdc@council.example"]
    received = record["message"]
    for header in ("Message-ID", "In-Reply-To", "References", "Auto-Submitted", "Subject"):
        assert received[header] == message[header]
    assert record["mime"] == message.as_bytes(policy=SMTP)  # byte for byte
    received_text, sent_text = received.get_body(("plain",)), message.get_body(("plain",))
    assert received_text is not None and sent_text is not None
    assert received_text.get_content().replace("\r\n", "\n") == sent_text.get_content()
    assert [part.get_filename() for part in received.iter_attachments()] == ["meeting.ics"]


def test_it_finds_a_sent_message_by_its_message_id(graph_fake: GraphFake, tmp_path: Path) -> None:
    client, _ = make_client(graph_fake, tmp_path)
    transport = GraphTransport(client, "cdc@council.example")
    with transport.connect() as connection:
        connection.send(reply_message())

    assert transport.find_sent("<reply-1@council.example>") is True
    assert transport.find_sent("<never-sent@council.example>") is False
    assert transport.find_sent("<it's@council.example>") is False


def test_it_reports_a_throttled_send_with_its_retry_after(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    client, _ = make_client(graph_fake, tmp_path, max_retry_after=5.0)
    graph_fake.fail_next(429, retry_after=60, path_contains="/sendMail")

    transport = GraphTransport(client, "cdc@council.example")

    with pytest.raises(TransientError) as caught, transport.connect() as connection:
        connection.send(reply_message())

    assert caught.value.retry_after == 60.0
    assert graph_fake.sent == {}
