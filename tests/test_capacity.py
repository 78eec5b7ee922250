"""Capacity and the waiting list, through the real CLI over a Maildir and file transport."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

NOW = "2026-12-01T09:00:00+00:00"


def setup(tmp_path: Path, capacity: int) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[mailbox]
kind = "maildir"
path = "maildir"

[smtp]
kind = "file"
path = "sent"

[committee]
name = "Crime and Disorder Committee"
address = "committee@council.example.gov.uk"

[[meetings]]
id = "dec"
title = "Crime and Disorder Committee"
start = 2026-12-10T18:30:00
end = 2026-12-10T20:30:00
in_person_capacity = {capacity}
online_capacity = 50
"""
    )
    mailbox.Maildir(tmp_path / "maildir", create=True)
    return config


def deliver(tmp_path: Path, n: int, sender: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "committee@council.example.gov.uk"
    message["Subject"] = "Committee meeting"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, n, tzinfo=UTC))
    message["Message-ID"] = f"<cap-{n}@residents.example>"
    message.set_content(body)
    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    key = box.add(message.as_bytes())
    # Maildir order is delivery order: space the files out in time.
    path = tmp_path / "maildir" / "new" / key
    os.utime(path, (1_790_000_000 + n, 1_790_000_000 + n))


def cli(config: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "processor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def outcomes(config: Path) -> dict[str, Any]:
    rows = json.loads(cli(config, "log", "--format", "json"))
    return {row["sender"].split("@")[0] + ":" + row["intent"]: row["outcome"] for row in rows}


def replies(tmp_path: Path) -> list[EmailMessage]:
    found = []
    for path in sorted((tmp_path / "sent").glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def test_it_waitlists_over_capacity_and_promotes_on_cancellation(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=2)
    deliver(tmp_path, 1, "Ann <ann@r.example>", "I'll come in person on 10 December.\n\nAnn")
    deliver(tmp_path, 2, "Ben <ben@r.example>", "Can I attend in person on 10 December?\n\nBen")
    deliver(tmp_path, 3, "Cat <cat@r.example>", "I'd like to come along in person, 10 December.")
    deliver(tmp_path, 4, "Dan <dan@r.example>", "Please send me the Teams link for 10 December.")
    cli(config, "run", "--once", "--now", NOW)
    assert outcomes(config) == {
        "ann:attend": "confirmed",
        "ben:attend": "confirmed",
        "cat:attend": "waitlisted",
        "dan:attend": "confirmed",
    }

    deliver(tmp_path, 5, "Ann <ann@r.example>", "Please cancel my place.\n\nAnn")
    cli(config, "run", "--once", "--now", NOW)
    assert outcomes(config)["ann:cancel"] == "cancelled"

    sent = replies(tmp_path)
    to_cat = [m for m in sent if m["To"].addresses[0].addr_spec == "cat@r.example"]
    assert len(to_cat) == 2  # the waiting-list reply, then the promotion
    assert {m["In-Reply-To"] for m in to_cat} == {"<cap-3@residents.example>"}
    bodies = [m.get_body(("plain",)).get_content() for m in to_cat]  # type: ignore[union-attr]
    assert "waiting list" in bodies[0]
    assert "place has become free" in bodies[1].lower()
    assert any(p.get_content_type() == "text/calendar" for p in to_cat[1].walk())
    assert len(sent) == 6  # one reply per request, plus the promotion

    # A rerun changes nothing: no second promotion, no second reply.
    cli(config, "run", "--once", "--now", NOW)
    assert len(replies(tmp_path)) == 6


def test_it_never_books_more_seats_than_the_chamber_has(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=5)
    for n in range(1, 13):
        deliver(
            tmp_path,
            n,
            f"R{n} <r{n}@r.example>",
            f"{'Two' if n % 2 else 'Three'} of us would like to come in person on 10 December.",
        )
    cli(config, "run", "--once", "--now", NOW)
    for n in (1, 2):
        deliver(tmp_path, 20 + n, f"R{n} <r{n}@r.example>", "Please cancel my place.")
    cli(config, "run", "--once", "--now", NOW)
    attendees = json.loads(cli(config, "log", "--format", "json"))
    assert len(attendees) == 14
    store = __import__("sqlite3").connect(tmp_path / "attendance.sqlite3")
    seats = store.execute(
        "SELECT COALESCE(SUM(party_size), 0) FROM registrations "
        "WHERE status = 'confirmed' AND mode = 'in_person'"
    ).fetchone()[0]
    assert 0 < seats <= 5


def test_it_sends_each_reminder_once_even_across_restarts(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=5)
    deliver(tmp_path, 1, "Ann <ann@r.example>", "I'll come in person on 10 December.\n\nAnn")
    deliver(tmp_path, 2, "Dan <dan@r.example>", "Please send me the Teams link for 10 December.")
    deliver(tmp_path, 3, "Eve <eve@r.example>", "I'd like to attend on 10 December.")  # no mode
    cli(config, "run", "--once", "--now", NOW)
    assert len(replies(tmp_path)) == 3
    # The day before: each confirmed resident gets one reminder, however often we run.
    for _ in range(3):
        cli(config, "run", "--once", "--now", "2026-12-09T19:00:00+00:00")
    sent = replies(tmp_path)
    assert len(sent) == 5
    reminded = sorted(m["To"].addresses[0].addr_spec for m in sent[3:])
    assert reminded == ["ann@r.example", "dan@r.example"]
    assert {m["In-Reply-To"] for m in sent[3:]} == {
        "<cap-1@residents.example>",
        "<cap-2@residents.example>",
    }


def test_it_filters_the_log_by_sender_outcome_and_date(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=1)
    deliver(tmp_path, 1, "Ann <ann@r.example>", "I'll come in person on 10 December.\n\nAnn")
    deliver(tmp_path, 2, "Ben <ben@r.example>", "Can I attend in person on 10 December?\n\nBen")
    deliver(tmp_path, 30, "Ann <ann@r.example>", "Please cancel my place.\n\nAnn")
    cli(config, "run", "--once", "--now", NOW)

    def senders(*args: str) -> list[str]:
        rows = json.loads(cli(config, "log", "--format", "json", *args))
        return [f"{row['sender']}:{row['outcome']}" for row in rows]

    assert senders("--sender", "ANN@r.example") == [
        "ann@r.example:confirmed",
        "ann@r.example:cancelled",
    ]
    assert senders("--outcome", "waitlisted") == ["ben@r.example:waitlisted"]
    assert senders("--since", "2026-11-30T10:30:00+00:00") == ["ann@r.example:cancelled"]
    assert senders("--until", "2026-11-30T10:02:00+00:00") == ["ann@r.example:confirmed"]
    csv_text = cli(config, "log", "--format", "csv", "--meeting", "dec")
    assert csv_text.splitlines()[0].startswith("message_id,received_at,sender,name,intent")


def deliver_reply(tmp_path: Path, n: int, sender: str, body: str, in_reply_to: str) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "committee@council.example.gov.uk"
    message["Subject"] = "Re: Committee meeting"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 11, n, tzinfo=UTC))
    message["Message-ID"] = f"<cap-{n}@residents.example>"
    message["In-Reply-To"] = in_reply_to
    message["References"] = in_reply_to
    message.set_content(body)
    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    key = box.add(message.as_bytes())
    os.utime(tmp_path / "maildir" / "new" / key, (1_790_000_100 + n, 1_790_000_100 + n))


def test_it_completes_a_request_when_the_resident_answers_our_question(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=5)
    deliver(tmp_path, 1, "Ann <ann@r.example>", "I'd like to attend the meeting on 10 December.")
    cli(config, "run", "--once", "--now", NOW)
    (question,) = replies(tmp_path)
    assert outcomes(config) == {"ann:attend": "clarification_requested"}

    deliver_reply(
        tmp_path,
        2,
        "Ann <ann@r.example>",
        "Online please.\n\nAnn",
        in_reply_to=question["Message-ID"],
    )
    cli(config, "run", "--once", "--now", NOW)

    rows = json.loads(cli(config, "log", "--format", "json"))
    assert [(r["outcome"], r["mode"], r["meeting_id"]) for r in rows] == [
        ("clarification_requested", None, "dec"),
        ("confirmed", "online", "dec"),
    ]


def test_it_stops_replying_to_a_sender_past_the_daily_budget(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=5)
    config.write_text(
        config.read_text().replace(
            'address = "committee@council.example.gov.uk"',
            'address = "committee@council.example.gov.uk"\nreplies_per_sender_per_day = 2',
        )
    )
    for n in range(1, 6):
        deliver(tmp_path, n, "Loop <loop@r.example>", f"Question number {n} about the meeting?")
    cli(config, "run", "--once", "--now", NOW)
    assert len(replies(tmp_path)) == 2
    rows = json.loads(cli(config, "log", "--format", "json"))
    assert len(rows) == 5
    assert [r["reply_sent"] for r in rows] == [True, True, False, False, False]


def test_it_mails_staff_the_daily_digest_once_a_day(tmp_path: Path) -> None:
    config = setup(tmp_path, capacity=5)
    config.write_text(
        config.read_text() + '\n[worker]\ndigest_time = "08:00"\n'
        'digest_to = "clerk@council.example.gov.uk"\n'
    )
    deliver(tmp_path, 1, "Ann <ann@r.example>", "I'll come in person on 10 December.\n\nAnn")
    cli(config, "run", "--once", "--now", "2026-12-01T07:00:00+00:00")  # before 08:00
    assert [m["To"].addresses[0].addr_spec for m in replies(tmp_path)] == ["ann@r.example"]
    for hour in ("08:30", "12:00", "23:00"):
        cli(config, "run", "--once", "--now", f"2026-12-01T{hour}:00+00:00")
    cli(config, "run", "--once", "--now", "2026-12-02T09:00:00+00:00")  # the next day
    digests = [m for m in replies(tmp_path) if m["To"].addresses[0].addr_spec.startswith("clerk")]
    assert [m["Message-ID"] for m in digests] == [
        "<digest-2026-12-01@council.example.gov.uk>",
        "<digest-2026-12-02@council.example.gov.uk>",
    ]
    assert digests[0]["Auto-Submitted"] == "auto-generated"
