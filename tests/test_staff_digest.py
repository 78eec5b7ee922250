"""`digest`: the daily summary mailed to staff through the configured transport."""

from __future__ import annotations

from pathlib import Path

from processor.store import Store
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.staff_support import (
    CONTACT,
    NOW,
    imap_mailbox,
    offline_config,
    request,
    run_cli,
    seed,
    smtp_server,
    write_config,
)


def test_it_mails_counts_the_review_queue_and_failures_to_staff(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    dovecot.append(
        "INBOX",
        request(
            1,
            "Jane <jane@residents.example>",
            "Attending",
            "I'd like to attend on 10 December online please.\n\nJane",
        ),
    )
    dovecot.append(
        "INBOX",
        request(
            2,
            "Linda <linda@residents.example>",
            "Bins <b>now</b>",
            "When is my bin collection? My council tax bill is wrong.",
        ),
    )
    config = write_config(
        tmp_path,
        imap_mailbox(dovecot.host, dovecot.port, dovecot.username),
        smtp_server(smtpd.host, smtpd.port),
    )
    smtpd.fail_next(1, "550 5.1.1 No such user", stage="rcpt")  # Jane's reply dies
    assert run_cli(config, "run", "--once", "--now", NOW).returncode == 0
    before = len(smtpd.messages)

    result = run_cli(config, "digest", "--now", NOW)

    assert result.returncode == 0, result.stderr
    assert len(smtpd.messages) == before + 1
    sent = smtpd.messages[-1]
    assert sent.rcpt_tos == (CONTACT,)  # committee.contact when no --to
    digest = sent.message
    # Jane's dead reply is both in the review queue and among the failures.
    assert digest["Subject"].endswith("2 message(s), 2 to review, 1 failed")
    assert digest["Auto-Submitted"] == "auto-generated"
    assert digest["X-Attendance-Processor"] == "1"
    text_part, html_part = digest.get_body(("plain",)), digest.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "confirmed                1" in text and "referred                 1" in text
    assert "linda@residents.example" in text and '"Bins <b>now</b>"' in text
    assert "550 5.1.1 No such user" in text and "jane@residents.example" in text
    assert "Bins &lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html


def test_it_counts_only_the_last_24_hours(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    store = Store(tmp_path / "store.sqlite3")
    try:
        seed(store, 1, "old@residents.example", name="Old", outcome="confirmed")
    finally:
        store.close()

    result = run_cli(
        config,
        "digest",
        "--to",
        "clerk@council.example.gov.uk",
        "--now",
        "2026-12-05T09:00:00+00:00",
    )

    assert result.returncode == 0, result.stderr
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    raw = eml.read_text()
    assert "To: clerk@council.example.gov.uk" in raw
    assert "0 message(s), 0 to review" in raw


def test_it_asks_for_an_address_when_the_contact_is_not_one(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            f'contact = "{CONTACT}"', 'contact = "Democratic Services on 01234 567890"'
        )
    )

    result = run_cli(config, "digest")

    assert result.returncode == 1
    assert "pass --to" in result.stderr
    assert not (tmp_path / "outbox").exists()
