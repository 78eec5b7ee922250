"""Outages in the middle of a cycle: an IMAP connection dropped mid-fetch, an SMTP 451."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from processor.config import load_config
from processor.errors import TransientError
from processor.pipeline import run_cycle
from processor.ports import MessageRef
from processor.services import FixedClock, build_services
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import NOW, request, staff_log, write_config


def test_it_loses_nothing_when_imap_drops_mid_fetch(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 7):
        dovecot.append(
            "INBOX",
            request(
                n,
                f"R{n} <r{n}@residents.example>",
                "Attending",
                f"Please send me the Teams link for 10 December.\n\nR{n}",
            ),
        )
    config_path = write_config(tmp_path, dovecot, smtpd, mailbox_extra="fetch_chunk = 2")
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")
    config = load_config(config_path)
    svc = build_services(config, clock=lambda: datetime.fromisoformat(NOW))
    real_fetch = svc.mailbox.fetch

    def fetch_then_die(refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for index, item in enumerate(real_fetch(refs)):
            yield item
            if index == 2:
                dovecot.stop()  # the server goes away with three messages handled

    monkeypatch.setattr(svc.mailbox, "fetch", fetch_then_die)
    with pytest.raises(TransientError):
        run_cycle(svc)
    svc.mailbox.close()
    svc.store.close()

    dovecot.start()
    svc = build_services(config, clock=lambda: datetime.fromisoformat(NOW))
    report = run_cycle(svc)
    svc.mailbox.close()
    svc.store.close()

    assert report.errors == []
    assert len(staff_log(config_path)) == 6
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == [
        f"r{n}@residents.example" for n in range(1, 7)
    ]
    assert dovecot.uids("INBOX") == []


def test_a_451_mid_group_leaves_the_untried_replies_pending_not_in_doubt(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The group was claimed in one commit; when the server defers the first reply, the
    # ones never tried go back to pending, so the next cycle sends them without first
    # searching Sent for each as if a crash had left them in doubt.
    for n in range(1, 4):
        sender = f"Resident {n} <resident{n}@residents.example>"
        dovecot.append("INBOX", request(n, sender, "Attending", "Online please, 10 December."))
    config = write_config(tmp_path, dovecot, smtpd)
    smtpd.fail_next(1, "451 4.3.0 Try again later")
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")

    svc = build_services(load_config(config), clock=lambda: datetime.fromisoformat(NOW))
    try:
        report = run_cycle(svc)
        rows = svc.store.db.execute(
            "SELECT state, attempts, last_error FROM outbox WHERE kind = 'reply' ORDER BY id"
        ).fetchall()
    finally:
        svc.mailbox.close()
        svc.store.close()

    assert report.replies_sent == 0
    assert [tuple(row) for row in rows] == [
        ("pending", 1, rows[0]["last_error"]),
        ("pending", 0, None),
        ("pending", 0, None),
    ]
    assert "451" in rows[0]["last_error"]


@pytest.mark.parametrize("reply_process", [False, True], ids=["after-deciding", "reply-process"])
def test_an_imap_outage_at_the_move_still_lets_the_decided_replies_go_out(
    reply_process: bool,
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Filing runs while the last replies go out; the decisions are committed by then,
    # so an outage there must not hold their replies back until the next cycle.
    for n in range(1, 4):
        sender = f"R{n} <r{n}@residents.example>"
        dovecot.append("INBOX", request(n, sender, "Attending", "Online please, 10 December."))
    config_path = write_config(tmp_path, dovecot, smtpd)
    if reply_process:
        worker = config_path.read_text().replace("[worker]\n", "[worker]\nreply_process_from = 1\n")
        config_path.write_text(worker)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")
    config = load_config(config_path)
    svc = build_services(config, clock=FixedClock(datetime.fromisoformat(NOW)))

    def move_fails(refs: Sequence[MessageRef], destination: str) -> None:
        raise TransientError("IMAP connection lost while moving")

    monkeypatch.setattr(svc.mailbox, "move", move_fails)
    with pytest.raises(TransientError):
        run_cycle(svc)
    svc.mailbox.close()
    svc.store.close()
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == [
        f"r{n}@residents.example" for n in range(1, 4)
    ]
    assert len(dovecot.uids("INBOX")) == 3

    svc = build_services(config, clock=FixedClock(datetime.fromisoformat(NOW)))
    report = run_cycle(svc)
    svc.mailbox.close()
    svc.store.close()
    assert report.errors == []
    assert report.replies_sent == 0
    assert dovecot.uids("INBOX") == []
    assert len(smtpd.messages) == 3
