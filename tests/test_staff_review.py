"""Review actions end to end: mail APPENDed to a real Dovecot, the real worker and CLI,
and the replies staff ask for arriving at a real aiosmtpd."""

from __future__ import annotations

import json
import sqlite3
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from processor.store import Store
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.staff_support import (
    MEETING,
    NOW,
    imap_mailbox,
    request,
    run_cli,
    smtp_server,
    write_config,
)

BINS = (
    3,
    "Linda Lane <linda@residents.example>",
    "Bins",
    "When is my bin collection? My council tax bill is wrong.",
)
JANE = (
    1,
    "Jane Smith <jane@residents.example>",
    "Attending",
    "I'd like to attend on 10 December online please.\n\nJane Smith",
)


def start(
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    *mail: tuple[int, str, str, str],
    extra: str = "",
) -> Path:
    for n, sender, subject, body in mail:
        dovecot.append("INBOX", request(n, sender, subject, body))
    config = write_config(
        tmp_path,
        imap_mailbox(dovecot.host, dovecot.port, dovecot.username),
        smtp_server(smtpd.host, smtpd.port),
        extra,
    )
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    return config


def ok(config: Path, *args: str) -> str:
    result = run_cli(config, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def log_row(config: Path, message_id: str) -> dict[str, Any]:
    rows = json.loads(ok(config, "log", "--format", "json"))
    return next(row for row in rows if row["message_id"] == message_id)


def queue(config: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(ok(config, "review", "list", "--format", "json"))
    return items


def audit(tmp_path: Path) -> list[sqlite3.Row]:
    store = Store(tmp_path / "store.sqlite3")
    try:
        return store.db.execute("SELECT * FROM audit ORDER BY id").fetchall()
    finally:
        store.close()


def mail_to(smtpd: SmtpServer, address: str) -> list[EmailMessage]:
    return [m.message for m in smtpd.messages if m.rcpt_tos == (address,)]


def test_it_lists_referred_messages_with_their_ids(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd, JANE, BINS)

    items = queue(config)
    table = ok(config, "review", "list")

    assert [item["message_id"] for item in items] == ["<staff-3@residents.example>"]
    assert items[0]["sender"] == "linda@residents.example"
    assert items[0]["reason"]
    assert f"{items[0]['id']:>5}  " in table and "linda@residents.example" in table
    assert "1 message(s) waiting for review" in table


def test_it_confirms_a_referred_request_with_a_place_and_a_reply(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd, BINS)
    assert len(mail_to(smtpd, "linda@residents.example")) == 1  # the "referred" reply
    item = queue(config)[0]

    out = ok(
        config,
        "review",
        "confirm",
        str(item["id"]),
        "--mode",
        "in_person",
        "--party",
        "2",
        "--meeting",
        MEETING,
        "--by",
        "alice",
    )

    assert "confirmed in_person" in out and "sent 1 reply" in out
    replies = mail_to(smtpd, "linda@residents.example")
    assert len(replies) == 2
    reply = replies[1]
    assert reply["In-Reply-To"] == "<staff-3@residents.example>"
    assert reply["Subject"] == "Re: Bins"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert any(part.get_content_type() == "text/calendar" for part in reply.walk())
    row = log_row(config, "<staff-3@residents.example>")
    assert (row["outcome"], row["mode"], row["party_size"]) == ("confirmed", "in_person", 2)
    assert row["rule"] == "staff.confirm" and "alice" in row["reason"]
    assert queue(config) == []
    assert "linda@residents.example" in ok(config, "attendees", MEETING).split("Online")[0]
    trail = [r for r in audit(tmp_path) if r["action"] == "review.confirm"]
    assert len(trail) == 1 and trail[0]["actor"] == "alice" and trail[0]["at"]

    # The same confirmation again is one reply, not two.
    again = ok(
        config,
        "review",
        "confirm",
        "<staff-3@residents.example>",
        "--mode",
        "in_person",
        "--party",
        "2",
        "--meeting",
        MEETING,
        "--by",
        "alice",
    )
    assert "nothing new to send" in again
    assert len(mail_to(smtpd, "linda@residents.example")) == 2


def test_it_adds_an_online_confirmation_to_the_teams_event(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    dry = tmp_path / "graph-dry-run"
    graph = (
        f'[graph]\nenabled = true\ndry_run = true\ndry_run_path = "{dry}"\n'
        'organiser = "committee@council.example.gov.uk"'
    )
    config = start(tmp_path, dovecot, smtpd, BINS, extra=graph)
    item = queue(config)[0]

    ok(config, "review", "confirm", str(item["id"]), "--mode", "online", "--meeting", MEETING)

    row = log_row(config, "<staff-3@residents.example>")
    assert (row["outcome"], row["mode"]) == ("confirmed", "online")
    # A dry run invites nobody: the log says the request was written down, not sent.
    assert (row["invite_sent"], row["invite_dry_run"]) == (False, True)
    patches = [json.loads(p.read_text()) for p in sorted(dry.glob("*-patch.json"))]
    assert patches and "linda@residents.example" in json.dumps(patches[-1]["body"])
    assert len(mail_to(smtpd, "linda@residents.example")) == 2


def test_it_rejects_with_the_staff_reason_in_a_reply(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd, BINS)
    item = queue(config)[0]
    reason = "This address handles meeting places only; <b>bins</b> are on 0300 123 4567."

    ok(config, "review", "reject", str(item["id"]), "--reason", reason, "--by", "bob")

    reply = mail_to(smtpd, "linda@residents.example")[-1]
    assert reply["In-Reply-To"] == "<staff-3@residents.example>"
    assert reply["References"] == "<staff-3@residents.example>"
    text = reply.get_body(("plain",))
    html = reply.get_body(("html",))
    assert text is not None and html is not None
    assert reason in text.get_content() and "Dear Linda Lane" in text.get_content()
    assert "&lt;b&gt;bins&lt;/b&gt;" in html.get_content()
    assert "<b>bins</b>" not in html.get_content()
    assert queue(config) == []
    row = log_row(config, "<staff-3@residents.example>")
    assert row["outcome"] == "referred" and reason in row["reason"]
    trail = [r for r in audit(tmp_path) if r["action"] == "review.reject"]
    assert [(r["actor"], r["detail"]) for r in trail] == [("bob", row["reason"])]

    # Rejecting twice for the same reason sends nothing more.
    ok(config, "review", "reject", str(item["id"]), "--reason", reason, "--by", "bob")
    assert len(mail_to(smtpd, "linda@residents.example")) == 2


def test_it_refuses_a_rejection_without_a_reason(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd, BINS)

    result = run_cli(config, "review", "reject", "<staff-3@residents.example>", "--reason", " ")

    assert result.returncode == 1 and "--reason" in result.stderr
    assert len(mail_to(smtpd, "linda@residents.example")) == 1


def test_it_resends_the_last_reply_under_a_new_message_id(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd, JANE)
    first = mail_to(smtpd, "jane@residents.example")[0]

    ok(config, "review", "resend", "staff-1@residents.example", "--by", "carol")
    ok(config, "review", "resend", "staff-1@residents.example", "--by", "carol")

    copies = mail_to(smtpd, "jane@residents.example")
    assert len(copies) == 3
    ids = {m["Message-ID"] for m in copies}
    assert len(ids) == 3 and all(i.endswith("@council.example.gov.uk>") for i in ids)
    for copy in copies[1:]:
        assert copy["Subject"] == first["Subject"]
        assert copy["In-Reply-To"] == "<staff-1@residents.example>"
        body, original = copy.get_body(("plain",)), first.get_body(("plain",))
        assert body is not None and original is not None
        assert body.get_content() == original.get_content()
    trail = [r for r in audit(tmp_path) if r["action"] == "review.resend"]
    assert [r["actor"] for r in trail] == ["carol", "carol"]


def test_it_retries_a_reply_the_server_refused(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    smtpd.fail_next(1, "554 5.7.1 Rejected for now", stage="data")
    config = start(tmp_path, dovecot, smtpd, JANE)
    assert smtpd.messages == []
    assert log_row(config, "<staff-1@residents.example>")["reply_sent"] is False

    out = ok(config, "retry", "<staff-1@residents.example>", "--by", "dave")

    assert "1 failed item(s) queued again" in out
    assert len(mail_to(smtpd, "jane@residents.example")) == 1
    assert log_row(config, "<staff-1@residents.example>")["reply_sent"] is True
    assert [r["actor"] for r in audit(tmp_path) if r["action"] == "review.retry"] == ["dave"]

    nothing = run_cli(config, "retry", "<staff-1@residents.example>")
    assert nothing.returncode == 1 and "nothing failed to retry" in nothing.stderr


def test_it_names_a_message_it_cannot_find(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = start(tmp_path, dovecot, smtpd)

    result = run_cli(config, "review", "resend", "999")

    assert result.returncode == 1
    assert "no message '999'" in result.stderr
