"""Replies go out from a thread or process of their own while the cycle is still deciding."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from processor.config import load_config
from processor.dispatch import ReplySession, file_sent_copies
from processor.journal import SentJournal
from processor.pipeline import run_cycle
from processor.records import OutboxItem
from processor.sender import FILING_CONNECTIONS, RepliesAlongside
from processor.services import CycleReport, FixedClock, Services, build_services
from tests.crashkit import scenario_config
from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import (
    NOW,
    online_request,
    request,
    staff_log,
    start_cli,
    wait_for,
    write_config,
)


@pytest.mark.parametrize("sending", ["exchange", "reply-process", "plain-smtp-small-cycle"])
def test_it_sends_replies_alongside_deciding_where_a_250_is_recorded_at_once(
    sending: str, tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # One message per chunk; the second hangs in understanding until its 5 s limit.
    # Where the server files its Sent copy before it answers (Exchange Online), the
    # first reply goes out from a thread during that wait, before the second has a
    # decision; with plain SMTP, from the reply process. A plain-SMTP cycle too small
    # for the reply process waits until deciding is over, so that the journal line
    # follows its 250 at once (sender.RepliesAlongside).
    for n, name in ((1, "Early"), (2, "Slow")):
        body = f"I'd like to attend online on 10 December.\n\n{name}"
        dovecot.append(
            "INBOX", request(n, f"{name} <{name.lower()}@residents.example>", "Hi", body)
        )
    config = scenario_config(
        tmp_path,
        dovecot,
        smtpd,
        None,
        server_files_sent=sending == "exchange",
        reply_process=sending == "reply-process",
    )
    config.write_text(config.read_text().replace("[mailbox]\n", "[mailbox]\nfetch_chunk = 1\n"))
    config.write_text(
        config.read_text().replace("[worker]\n", "[worker]\nunderstand_timeout = 5.0\n")
    )

    worker = start_cli(config, "run", "--once", "--now", NOW, faults="understand=hang:e2e-2")
    wait_for(lambda: bool(smtpd.messages), 20)
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:  # at once: no CLI start-up
        decided_then = {
            row[0]
            for row in db.execute("SELECT message_id FROM messages WHERE outcome IS NOT NULL")
        }
    _, stderr = worker.communicate(timeout=30)

    assert worker.returncode == 0, stderr
    assert [m.rcpt_tos for m in smtpd.messages] == [("early@residents.example",)]
    if sending == "plain-smtp-small-cycle":
        assert decided_then == {"<e2e-1@residents.example>", "<e2e-2@residents.example>"}
    else:
        assert decided_then == {"<e2e-1@residents.example>"}, "the reply waited for the cycle"
    log = staff_log(config)
    assert log["<e2e-2@residents.example>"]["outcome"] == "referred"


def test_a_reply_whose_copy_waits_to_be_filed_is_not_sent_again(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The filing thread marks a row done only after its Sent copy is filed; until then
    # the row is `sending` in the store, as a crash would leave it. The sending thread
    # comes back for each new batch of decisions, and must not take it for one in doubt.
    svc = _queued_replies(2, tmp_path, dovecot, smtpd, monkeypatch)

    waiting: list[OutboxItem] = []  # a filing thread that has not got to them yet
    session = ReplySession(svc, CycleReport(), file_copies=waiting.extend)
    session.send_due()
    session.send_due()
    assert len(smtpd.messages) == 2
    assert len(waiting) == 2

    file_sent_copies(svc, waiting)
    session.close(done=True)
    assert svc.store.due_outbox(datetime.fromisoformat(NOW), ("reply",)) == []
    assert len(dovecot.uids("Sent")) == 2
    svc.mailbox.close()
    svc.store.close()


def test_a_cycle_that_sends_nothing_keeps_the_journal_of_a_crashed_one(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal is emptied only once a session has read it into the store; a cycle
    # stopped before sending must leave it for the next one.
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")
    svc = build_services(load_config(write_config(tmp_path, dovecot, smtpd)))
    journal = SentJournal(svc.store.path)
    journal.record("reply:<accepted-before-a-crash@council.example>")
    journal.close()
    svc.stop.set()  # SIGTERM before anything was sent

    with RepliesAlongside(svc, CycleReport()):
        pass

    assert journal.pending() == ["reply:<accepted-before-a-crash@council.example>"]
    svc.mailbox.close()
    svc.store.close()


def test_each_reply_is_handed_over_only_once_the_last_ones_line_is_on_disk(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal syncs on a thread of its own while the next envelope goes out; the
    # session must wait for it before the next content, so that at most one accepted
    # reply is ever not yet on disk (journal.py).
    seen: list[tuple[int, int, int]] = []  # (replies accepted, lines, lines on disk)

    class Watched(SentJournal):
        def wait_durable(self) -> None:
            super().wait_durable()
            seen.append((len(smtpd.messages), self._written, self._durable))

    monkeypatch.setattr("processor.dispatch.SentJournal", Watched)
    svc = _queued_replies(3, tmp_path, dovecot, smtpd, monkeypatch)

    session = ReplySession(svc, CycleReport())
    session.send_due()
    session.close(done=True)

    # Before each reply's content, and at the close.
    assert seen == [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert len(smtpd.messages) == 3
    svc.mailbox.close()
    svc.store.close()


def test_a_large_cycle_files_each_sent_copy_once_over_two_sessions(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three groups of replies from the reply process, filed by FILING_CONNECTIONS
    # threads side by side; the journal is spent only once all of them are done.
    assert FILING_CONNECTIONS == 2
    client = dovecot.client()
    client.multiappend("INBOX", [online_request(n) for n in range(1, 121)])
    client.logout()
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")
    svc = build_services(
        load_config(write_config(tmp_path, dovecot, smtpd)),
        clock=FixedClock(datetime.fromisoformat(NOW)),  # the reply process's too
    )

    report = run_cycle(svc)

    assert report.replies_sent == 120
    client = dovecot.client()
    client.select_folder("Sent", readonly=True)
    headers = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    client.logout()
    filed = [data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"] for data in headers.values()]
    sent = {m.message["Message-ID"] for m in smtpd.messages}
    assert len(filed) == 120
    assert {line.decode().split(":", 1)[1].strip() for line in filed} == sent
    states = svc.store.db.execute("SELECT DISTINCT state FROM outbox WHERE kind = 'reply'")
    assert [row[0] for row in states] == ["done"]
    assert SentJournal(svc.store.path).pending() == []
    assert not SentJournal(svc.store.path).path.exists()
    svc.mailbox.close()
    svc.store.close()


def test_a_deferred_reply_leaves_a_reply_in_doubt_in_doubt(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When the server defers a reply, the rest of its group goes back to `pending`:
    # only the rows this session claimed. A row a crash left `sending` must stay in
    # doubt, or the next cycle would send it without first looking for it in Sent.
    svc = _queued_replies(3, tmp_path, dovecot, smtpd, monkeypatch)
    first, in_doubt, third = svc.store.due_outbox(datetime.fromisoformat(NOW), ("reply",))
    svc.store.claim([in_doubt.id])  # as a session killed before its 250 leaves it
    smtpd.fail_next(1, "451 4.3.0 Try again later")

    session = ReplySession(svc, CycleReport())
    session.send_due()
    session.close(done=False)

    states = dict(svc.store.db.execute("SELECT id, state FROM outbox WHERE kind = 'reply'"))
    assert states == {first.id: "pending", in_doubt.id: "sending", third.id: "pending"}
    assert smtpd.messages == []
    svc.mailbox.close()
    svc.store.close()


# What the reply process builds, in a fresh interpreter: which of Graph's libraries it
# had to import (sys.modules), printed as JSON.
_IMPORTED = """
import json, sys
from pathlib import Path
from processor.config import load_config
from processor.services import build_services
svc = build_services(load_config(Path(sys.argv[1])), calendar=sys.argv[2] == "with")
print(json.dumps(sorted(m for m in ("jinja2", "msal", "requests") if m in sys.modules)))
"""


@pytest.mark.parametrize(
    ("calendar", "imported"), [("with", ["jinja2", "requests"]), ("without", [])]
)
def test_the_reply_process_starts_without_graphs_libraries(
    calendar: str,
    imported: list[str],
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph_fake: GraphFake,
) -> None:
    # The reply process (calendar=False) sends over SMTP and files over IMAP: the
    # tenth of a second that msal, requests and the Teams templates take to import is
    # spent only by the worker, and msal's only when it first asks for a token.
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)
    env = {**os.environ, "TEST_IMAP_PASSWORD": "secret"}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTED, str(config), calendar],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == imported


def _queued_replies(
    count: int,
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Services:
    """A worker's services after a cycle that decided `count` online requests and
    queued their replies, with the SMTP server down so none went out."""
    for n in range(1, count + 1):
        sender = f"Resident {n} <resident{n}@residents.example>"
        dovecot.append("INBOX", request(n, sender, "Hi", "Online please, 10 December."))
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "secret")
    svc = build_services(
        load_config(write_config(tmp_path, dovecot, smtpd)),
        clock=lambda: datetime.fromisoformat(NOW),
    )
    smtpd.stop()
    run_cycle(svc)
    smtpd.start()
    return svc
