"""Teams invitations end to end: Dovecot in, the real CLI, the HTTPS Graph fake, aiosmtpd out."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import ReceivedMessage, SmtpServer
from tests.support import (
    NOW,
    ORGANISER,
    online_request,
    request,
    run_cli,
    staff_log,
    start_cli,
    wait_for,
    write_config,
)


def attendee_adds(graph: GraphFake) -> Counter[str]:
    """How many PATCHes newly added each address: Exchange invites on each such add."""
    adds: Counter[str] = Counter()
    current: set[str] = set()
    for call in graph.requests("PATCH", "/events/"):
        body = call.json()
        if "attendees" not in body:
            continue
        now = {a["emailAddress"]["address"].lower() for a in body["attendees"]}
        adds.update(now - current)
        current = now
    return adds


def test_it_invites_online_residents_once_and_removes_on_cancel(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    for n in range(1, 4):
        dovecot.append("INBOX", online_request(n))
    dovecot.append(
        "INBOX",
        request(
            4,
            "In Person <inperson@residents.example>",
            "Committee",
            "I will come in person on 10 December.\n\nPat",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)

    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr

    events = graph_fake.user_events(ORGANISER)
    assert len(events) == 1
    event = events[0]
    assert event["hideAttendees"] is True
    assert event["isOnlineMeeting"] is True
    assert sorted(graph_fake.attendees(ORGANISER, event["id"])) == [
        f"resident{n}@residents.example" for n in range(1, 4)
    ]
    assert len(smtpd.messages) == 4
    log = staff_log(config)
    assert [log[f"<e2e-{n}@residents.example>"]["invite_sent"] for n in range(1, 5)] == [
        True,
        True,
        True,
        False,
    ]

    # A rerun over the same mailbox changes nothing at Graph and sends nothing.
    before = len(graph_fake.requests())
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert len(graph_fake.requests()) == before
    assert len(smtpd.messages) == 4

    dovecot.append(
        "INBOX",
        request(
            5,
            "Resident 2 <resident2@residents.example>",
            "Re: Committee",
            "Please cancel my place.\n\nResident 2",
        ),
    )
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert sorted(graph_fake.attendees(ORGANISER, event["id"])) == [
        "resident1@residents.example",
        "resident3@residents.example",
    ]
    assert max(attendee_adds(graph_fake).values()) == 1


def test_it_costs_three_graph_requests_for_fifty_registrations_in_one_cycle(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    for n in range(1, 51):
        dovecot.append("INBOX", online_request(n))
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)

    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr

    graph_calls = [c for c in graph_fake.requests() if "/users/" in c.path]
    # Create the event, read its attendees and ETag, one PATCH for all fifty.
    assert [c.method for c in graph_calls] == ["POST", "GET", "PATCH"]
    assert len(graph_calls) <= 3
    assert len(graph_fake.token_requests()) == 1
    event = graph_fake.user_events(ORGANISER)[0]
    assert len(graph_fake.attendees(ORGANISER, event["id"])) == 50
    assert len(smtpd.messages) == 50


def test_it_rides_out_throttling_and_conflicts_without_losing_or_doubling_anyone(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    for n in range(1, 6):
        dovecot.append("INBOX", online_request(n))
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)
    graph_fake.fail_next(429, times=2, retry_after=1, method="PATCH")
    graph_fake.conflict_next(1)

    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    event = graph_fake.user_events(ORGANISER)[0]
    assert sorted(graph_fake.attendees(ORGANISER, event["id"])) == sorted(
        f"resident{n}@residents.example" for n in range(1, 6)
    )
    assert max(attendee_adds(graph_fake).values()) == 1

    # A storm longer than the worker waits inline: the change waits in the outbox.
    for n in range(6, 9):
        dovecot.append("INBOX", online_request(n))
    graph_fake.fail_next(503, times=50, retry_after=60, method="PATCH")
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert len(graph_fake.attendees(ORGANISER, event["id"])) == 5
    with graph_fake.lock:
        graph_fake.faults.clear()
    result = run_cli(config, "run", "--once", "--now", "2026-12-01T11:00:00+00:00")
    assert result.returncode == 0, result.stderr
    assert len(graph_fake.attendees(ORGANISER, event["id"])) == 8
    assert max(attendee_adds(graph_fake).values()) == 1


def test_it_moves_the_teams_event_when_the_meeting_changes_in_config(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    dovecot.append("INBOX", online_request(1))
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)
    assert run_cli(config, "run", "--once", "--now", NOW).returncode == 0
    config.write_text(
        config.read_text()
        .replace("start = 2026-12-10T18:30:00", "start = 2026-12-10T19:00:00")
        .replace("end = 2026-12-10T20:30:00", "end = 2026-12-10T21:00:00")
    )

    result = run_cli(config, "run", "--once", "--now", NOW)

    assert result.returncode == 0, result.stderr
    (event,) = graph_fake.user_events(ORGANISER)
    assert event["_start"].astimezone(UTC) == datetime(2026, 12, 10, 19, 0, tzinfo=UTC)
    assert graph_fake.attendees(ORGANISER, event["id"]) == ["resident1@residents.example"]
    patches = [c.json() for c in graph_fake.requests("PATCH", "/events/")]
    assert "attendees" not in patches[-1]  # the time change does not touch the attendees


def test_it_gets_the_teams_event_ready_while_deciding_and_answers_a_cycle_alike(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    # One message per chunk; the second hangs in understanding until its 3 s limit.
    # The event is created during that wait, not after deciding, so that only the PATCH
    # is left at the end. The third is decided after the event exists, yet its reply,
    # like the first's, says what the store knew when the cycle began (no event, so no
    # join link): one cycle answers alike, whatever the Teams thread's timing. The next
    # cycle's reply carries the link.
    for n in (1, 2, 3):
        dovecot.append("INBOX", online_request(n))
    config = write_config(tmp_path, dovecot, smtpd, graph_fake, mailbox_extra="fetch_chunk = 1")
    config.write_text(
        config.read_text().replace("[worker]\n", "[worker]\nunderstand_timeout = 3.0\n")
    )
    worker = start_cli(config, "run", "--once", "--now", NOW, faults="understand=hang:e2e-2")
    wait_for(lambda: bool(graph_fake.requests("POST", "/events")), 20)
    created_while_deciding = worker.poll() is None and not staff_log_has(config, 3)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert created_while_deciding

    assert len(graph_fake.requests("POST", "/events")) == 1
    assert len(graph_fake.requests("PATCH", "/events/")) == 1
    join_url = graph_fake.user_events(ORGANISER)[0]["onlineMeeting"]["joinUrl"]
    texts = {m.rcpt_tos[0]: plain_text(m) for m in smtpd.messages}
    for n in (1, 3):
        assert "You are registered" in texts[f"resident{n}@residents.example"]
        assert join_url not in texts[f"resident{n}@residents.example"]

    dovecot.append("INBOX", online_request(4))
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert join_url in plain_text(smtpd.messages[-1])


def plain_text(message: ReceivedMessage) -> str:
    body = message.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def staff_log_has(config: Path, n: int) -> bool:
    """Whether request n has a decision yet (read straight from the store: no CLI)."""
    with sqlite3.connect(config.parent / "store.sqlite3") as db:
        row = db.execute(
            "SELECT outcome FROM messages WHERE message_id = ?", (f"<e2e-{n}@residents.example>",)
        ).fetchone()
    return row is not None and row[0] is not None
