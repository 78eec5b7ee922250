"""End to end: requests APPENDed to a real Dovecot, the real CLI, replies at a real aiosmtpd."""

from __future__ import annotations

import os
import sqlite3
from email.message import EmailMessage
from pathlib import Path

from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import NOW, request, run_cli, staff_log, write_config


def test_it_answers_each_request_once_and_files_the_mail(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    dovecot.append(
        "INBOX",
        request(
            1,
            "Jane Smith <Jane.Smith@residents.example>",
            "Attending",
            "I'd like to attend on 10 December online please.\n\nJane Smith",
        ),
    )
    dovecot.append(
        "INBOX",
        request(
            2,
            "Bob Jones <bob@residents.example>",
            "Thursday",
            "Can I come in person with my neighbour on 10 December?\n\nBob",
            Reply_To="Bob at home <bob.home@residents.example>",
        ),
    )
    dovecot.append(
        "INBOX",
        request(
            3,
            "Out of office <ooo@residents.example>",
            "Auto: Attending",
            "I am away.",
            Auto_Submitted="auto-replied",
        ),
    )
    dovecot.append(
        "INBOX",
        request(
            4,
            "Linda <linda@residents.example>",
            "Bins",
            "When is my bin collection? My council tax bill is wrong.",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd)

    first = run_cli(config, "run", "--once", "--now", NOW)
    assert first.returncode == 0, first.stderr

    log = staff_log(config)
    assert log["<e2e-1@residents.example>"]["outcome"] == "confirmed"
    assert log["<e2e-1@residents.example>"]["mode"] == "online"
    assert log["<e2e-1@residents.example>"]["sender"] == "jane.smith@residents.example"
    assert log["<e2e-2@residents.example>"]["outcome"] == "confirmed"
    assert log["<e2e-2@residents.example>"]["party_size"] == 2
    assert log["<e2e-3@residents.example>"]["outcome"] == "ignored"
    assert log["<e2e-3@residents.example>"]["reply_sent"] is False
    assert log["<e2e-4@residents.example>"]["outcome"] == "referred"
    for row in log.values():
        assert row["reason"]

    replies = {m.message["In-Reply-To"]: m for m in smtpd.messages}
    assert set(replies) == {
        "<e2e-1@residents.example>",
        "<e2e-2@residents.example>",
        "<e2e-4@residents.example>",
    }
    jane = replies["<e2e-1@residents.example>"].message
    assert jane["To"].addresses[0].addr_spec.lower() == "jane.smith@residents.example"
    assert jane["Subject"] == "Re: Attending"
    assert jane["References"] == "<e2e-1@residents.example>"
    assert jane["Auto-Submitted"] == "auto-replied"
    assert jane["Message-ID"].endswith("@council.example.gov.uk>")
    bob = replies["<e2e-2@residents.example>"]
    assert bob.rcpt_tos == ("bob.home@residents.example",)  # Reply-To honoured
    assert any(part.get_content_type() == "text/calendar" for part in bob.message.walk())

    assert dovecot.uids("INBOX") == []
    assert len(dovecot.uids("Processed")) == 3
    assert len(dovecot.uids("Review")) == 1

    # The same mailbox again (a message put back): no second reply, no second row.
    dovecot.append(
        "INBOX",
        request(
            1,
            "Jane Smith <jane.smith@residents.example>",
            "Attending",
            "I'd like to attend on 10 December online please.\n\nJane Smith",
        ),
    )
    second = run_cli(config, "run", "--once", "--now", NOW)
    assert second.returncode == 0, second.stderr
    assert len(smtpd.messages) == 3
    assert len(staff_log(config)) == 4
    assert dovecot.uids("INBOX") == []


def test_it_gives_bad_input_an_outcome_and_goes_on(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    no_id = request(
        1,
        "Ann <ann@residents.example>",
        "Attending",
        "I'd like to attend online on 10 December.\n\nAnn",
    )
    no_id = b"\n".join(line for line in no_id.split(b"\n") if not line.startswith(b"Message-ID"))
    dovecot.append("INBOX", no_id)
    huge = request(2, "Big <big@residents.example>", "Photos", "x" * 60_000)
    dovecot.append("INBOX", huge)
    dovecot.append(
        "INBOX",
        request(3, "Poison <poison@residents.example>", "Attending", "Online please, 10 December."),
    )
    dovecot.append(
        "INBOX",
        request(
            4,
            "After <after@residents.example>",
            "Attending",
            "I'd like to join online on 10 December.\n\nAfter",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd, mailbox_extra="max_message_bytes = 20000")

    result = run_cli(config, "run", "--once", "--now", NOW, faults="understand=raise:e2e-3")
    assert result.returncode == 0, result.stderr

    rows = list(staff_log(config).values())
    by_sender = {row["sender"]: row for row in rows}
    assert by_sender["ann@residents.example"]["outcome"] == "confirmed"
    assert by_sender["ann@residents.example"]["message_id"].endswith("@missing-message-id.invalid>")
    assert by_sender["big@residents.example"]["outcome"] == "referred"
    assert "limit" in by_sender["big@residents.example"]["reason"]
    assert by_sender["poison@residents.example"]["outcome"] == "referred"
    assert "fault injected" in by_sender["poison@residents.example"]["reason"]
    assert by_sender["after@residents.example"]["outcome"] == "confirmed"
    assert dovecot.uids("INBOX") == []
    assert len(dovecot.uids("Review")) == 2
    assert {m.rcpt_tos for m in smtpd.messages} == {
        ("ann@residents.example",),
        ("after@residents.example",),
    }


def test_a_decision_that_fails_part_way_is_undone_alone_and_referred(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # Its message row and registration are written, then the fault: its batch, decided
    # without a savepoint each, is undone and decided again with them, so only its own
    # writes are undone, and the messages around it are decided once.
    for n, name in enumerate(("Ann", "Bea", "Cat", "Dee"), start=1):
        body = f"I'd like to attend online on 10 December.\n\n{name}"
        dovecot.append(
            "INBOX", request(n, f"{name} <{name.lower()}@residents.example>", "Hi", body)
        )
    config = write_config(tmp_path, dovecot, smtpd)

    result = run_cli(config, "run", "--once", "--now", NOW, faults="mid_decision=raise:e2e-2")
    assert result.returncode == 0, result.stderr

    assert "deciding its batch again" in result.stderr
    by_sender = {row["sender"]: row for row in staff_log(config).values()}
    assert by_sender["bea@residents.example"]["outcome"] == "referred"
    assert "fault injected" in by_sender["bea@residents.example"]["reason"]
    for sender in ("ann", "cat", "dee"):
        assert by_sender[f"{sender}@residents.example"]["outcome"] == "confirmed"
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        registered = [row[0] for row in db.execute("SELECT sender FROM registrations")]
        queued = [row[0] for row in db.execute("SELECT recipient FROM outbox WHERE kind = 'reply'")]
    assert sorted(registered) == [f"{s}@residents.example" for s in ("ann", "cat", "dee")]
    assert sorted(queued) == sorted(registered)
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == sorted(registered)


def test_it_refers_a_message_that_takes_too_long_and_goes_on(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    dovecot.append(
        "INBOX",
        request(1, "Slow <slow@residents.example>", "Attending", "Online please, 10 December."),
    )
    dovecot.append(
        "INBOX",
        request(
            2,
            "Next <next@residents.example>",
            "Attending",
            "I'd like to join online on 10 December.\n\nNext",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd)
    config.write_text(
        config.read_text().replace("[worker]\n", "[worker]\nunderstand_timeout = 1.0\n")
    )

    result = run_cli(config, "run", "--once", "--now", NOW, faults="understand=hang:e2e-1")

    assert result.returncode == 0, result.stderr
    log = staff_log(config)
    assert log["<e2e-1@residents.example>"]["outcome"] == "referred"
    assert "longer than 1 s" in log["<e2e-1@residents.example>"]["reason"]
    assert log["<e2e-2@residents.example>"]["outcome"] == "confirmed"
    assert len(dovecot.uids("Review")) == 1


def test_it_keeps_replies_waiting_while_smtp_is_down_and_sends_them_once(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    for n in (1, 2, 3):
        dovecot.append(
            "INBOX",
            request(
                n,
                f"R{n} <r{n}@residents.example>",
                "Attending",
                f"Please send me the Teams link for 10 December.\n\nR{n}",
            ),
        )
    config = write_config(tmp_path, dovecot, smtpd)
    smtpd.stop()
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert [row["reply_sent"] for row in staff_log(config).values()] == [False] * 3
    assert dovecot.uids("INBOX") == []  # decided and filed; the replies wait in the outbox

    smtpd.start()
    smtpd.fail_next(1, "451 4.3.0 Try again later")
    for hour in (12, 13):  # the 451 postpones one reply (with backoff); a later cycle sends it
        run_cli(config, "run", "--once", "--now", f"2026-12-01T{hour}:00:00+00:00")
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == [
        "r1@residents.example",
        "r2@residents.example",
        "r3@residents.example",
    ]
    assert [row["reply_sent"] for row in staff_log(config).values()] == [True] * 3


def test_it_loses_nothing_when_imap_is_down_and_comes_back(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    for n in (1, 2):
        dovecot.append(
            "INBOX",
            request(
                n,
                f"R{n} <r{n}@residents.example>",
                "Attending",
                f"Please send me the Teams link for 10 December.\n\nR{n}",
            ),
        )
    config = write_config(tmp_path, dovecot, smtpd)
    dovecot.stop()
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 1
    assert "error:" in result.stderr
    dovecot.start()
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert len(smtpd.messages) == 2
    assert dovecot.uids("INBOX") == []


def test_it_puts_a_reply_it_gave_up_on_in_front_of_staff(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    dovecot.append(
        "INBOX",
        request(
            1,
            "Gone <gone@residents.example>",
            "Attending",
            "Please send me the Teams link for 10 December.",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd)
    smtpd.fail_next(1, "550 5.1.1 No such user", stage="rcpt")

    assert run_cli(config, "run", "--once", "--now", NOW).returncode == 0

    row = staff_log(config)["<e2e-1@residents.example>"]
    assert (row["outcome"], row["reply_sent"]) == ("confirmed", False)
    assert "550" in row["error"]
    queue = run_cli(config, "review", "list", "--format", "json")
    assert queue.returncode == 0, queue.stderr
    assert "Gave up sending" in queue.stdout
    assert "gone@residents.example" in queue.stdout


def test_it_reads_a_large_message_without_downloading_its_attachment(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    message = EmailMessage()
    message["From"] = "Photo Fan <photos@residents.example>"
    message["To"] = "committee@council.example.gov.uk"
    message["Subject"] = "Attending"
    message["Date"] = "Mon, 30 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = "<e2e-big@residents.example>"
    message.set_content("I'd like to join online on 10 December, please.\n\nPhoto Fan")
    message.add_alternative("<p>I'd like to join <b>online</b> on 10 December.</p>", subtype="html")
    message.add_attachment(
        os.urandom(3_000_000), maintype="image", subtype="jpeg", filename="street.jpg"
    )
    dovecot.append("INBOX", message.as_bytes())
    config = write_config(tmp_path, dovecot, smtpd)

    result = run_cli(config, "run", "--once", "--now", NOW)

    assert result.returncode == 0, result.stderr
    row = staff_log(config)["<e2e-big@residents.example>"]
    assert (row["outcome"], row["mode"]) == ("confirmed", "online")
    stored = (
        sqlite3.connect(tmp_path / "store.sqlite3")
        .execute("SELECT length(raw), size FROM messages")
        .fetchone()
    )
    assert stored[1] > 4_000_000  # the size in the mailbox, attachment and all
    assert stored[0] < 20_000  # what was downloaded and kept: the text parts
    assert len(dovecot.uids("Processed")) == 1  # the original, whole, filed as usual
