"""Exactly once under SIGKILL: at every named fault point, and at random moments."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from processor.errors import LockHeldError
from processor.faults import POINTS
from processor.store import Store
from tests.crashkit import Tally, named_point_scenario, random_kill_scenario, scenario_config
from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import (
    NOW,
    online_request,
    request,
    run_cli,
    staff_log,
    start_cli,
    write_config,
)

# Where to die: the second pass (mid-batch) of each per-message point; the calendar
# PATCH and the move happen once a cycle, so there the first pass is the only one.
ONCE_A_CYCLE = {"after_calendar", "before_move"}
KILL_POINTS = [(p, 1 if p in ONCE_A_CYCLE else 2) for p in POINTS if p != "understand"]


@pytest.mark.slow
@pytest.mark.parametrize("reply_process", [False, True], ids=["after-deciding", "reply-process"])
@pytest.mark.parametrize(("point", "nth"), KILL_POINTS)
def test_it_gives_one_reply_and_one_invite_after_a_kill_at(
    point: str,
    nth: int,
    reply_process: bool,
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph_fake: GraphFake,
) -> None:
    # Plain SMTP, replies sent after deciding or from the reply process while the
    # worker decides: a kill of the worker must not cost a reply twice, nor a kill at
    # a point the reply process passes (it takes the worker down with it).
    result = named_point_scenario(
        tmp_path, dovecot, smtpd, graph_fake, point, nth, reply_process=reply_process
    )
    assert result.kills >= 1, f"the worker never reached {point}"
    assert result == Tally(0, 0, 0, 0, result.kills)


# Random kills where the record of a 250 cannot lag: a server that files its own Sent
# copy (Exchange Online's way), and plain SMTP sent from the reply process, which
# outlives the worker long enough to journal the reply in hand.
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("sending", ["exchange", "reply-process"])
def test_it_gives_one_reply_and_one_invite_after_random_kills(
    sending: str,
    seed: int,
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph_fake: GraphFake,
) -> None:
    result = random_kill_scenario(
        tmp_path,
        dovecot,
        smtpd,
        graph_fake,
        seed,
        server_files_sent=sending == "exchange",
        reply_process=sending == "reply-process",
    )
    assert result == Tally(0, 0, 0, 0, result.kills)


def test_a_killed_workers_reply_process_journals_the_reply_in_hand_and_sends_no_more(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # The SMTP server holds the second reply's DATA until told; meanwhile the worker is
    # killed. Its reply process has that reply in hand: it must see it through (the
    # server takes it), journal it, send nothing more, and keep the store locked until
    # it has exited, so that no new worker sends beside it.
    for n in range(1, 7):
        dovecot.append("INBOX", online_request(n))
    config = scenario_config(tmp_path, dovecot, smtpd, None, False, reply_process=True)
    in_hand, release = threading.Event(), threading.Event()

    def hold_the_second(raw: bytes) -> None:  # runs before the server's 250
        if len(smtpd.messages) == 2:
            in_hand.set()
            release.wait(20)

    smtpd.file_sent_copy = hold_the_second
    worker = start_cli(config, "run", "--once", "--now", NOW, stderr=subprocess.DEVNULL)
    assert in_hand.wait(30), "the second reply never reached the server"
    worker.kill()
    worker.wait(timeout=10)
    store = Store(tmp_path / "store.sqlite3")
    with pytest.raises(LockHeldError):
        store.lock.acquire()  # the reply process still holds the worker's lock
    release.set()
    store.lock.acquire(wait=10)  # it finishes the reply in hand and exits
    store.close()
    assert len(smtpd.messages) == 2

    smtpd.file_sent_copy = None
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    recipients = sorted(m.rcpt_tos[0] for m in smtpd.messages)
    assert recipients == sorted(f"resident{n}@residents.example" for n in range(1, 7))
    assert len(dovecot.uids("Sent")) == 6


def test_a_failed_reply_process_fails_the_cycle_and_the_next_sends_each_reply_once(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    for n in range(1, 4):
        dovecot.append("INBOX", online_request(n))
    config = scenario_config(tmp_path, dovecot, smtpd, None, False, reply_process=True)

    failed = run_cli(config, "run", "--once", "--now", NOW, faults="after_send=raise:")
    assert failed.returncode == 1
    assert "the reply process failed: InjectedFault" in failed.stderr
    assert len(smtpd.messages) == 1  # accepted, journalled, then the fault

    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == [
        f"resident{n}@residents.example" for n in (1, 2, 3)
    ]
    assert {row["reply_sent"] for row in staff_log(config).values()} == {True}


def test_it_refers_a_message_that_kills_the_worker_and_spares_its_chunk(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # Five requests decided in one chunk transaction; the third kills the worker each
    # time it is read. The chunk is retried message by message, so the killer is found
    # (referred after three deaths on its own; the chunk's death is not held against
    # anyone) and the other four are answered, once each.
    for n in range(1, 6):
        sender = f"Resident {n} <resident{n}@residents.example>"
        body = f"I'd like to attend online on 10 December.\n\nResident {n}"
        dovecot.append("INBOX", request(n, sender, "Attending", body))
    # A server that files its own Sent copy, so replies go out while the cycle decides
    # (sender.py) and the kills come in the middle of sending too.
    config = scenario_config(tmp_path, dovecot, smtpd, None, server_files_sent=True)

    kills = 0
    for _ in range(6):
        result = run_cli(config, "run", "--once", "--now", NOW, faults="understand=die:e2e-3")
        if result.returncode == 0:
            break
        assert result.returncode == -9, result.stderr
        kills += 1

    assert kills == 4  # the start in the chunk, then three starts on its own
    by_sender = {row["sender"]: row for row in staff_log(config).values()}
    poison = by_sender.pop("resident3@residents.example")
    assert poison["outcome"] == "referred"
    assert "failed 3 times" in poison["reason"]
    assert {row["outcome"] for row in by_sender.values()} == {"confirmed"}
    assert len(by_sender) == 4
    assert sorted(m.rcpt_tos for m in smtpd.messages) == [
        (f"resident{n}@residents.example",) for n in (1, 2, 4, 5)
    ]
    assert dovecot.uids("INBOX") == []


def test_a_reply_sent_before_a_kill_is_not_resent_and_gets_one_sent_copy(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # Killed just after the first 250, recorded only in the sent journal: the row is
    # still `sending` in the store and its Sent copy not yet filed (copies go in one
    # MULTIAPPEND per group), so only the journal knows. The next run must file that
    # copy once and send nothing again.
    for n in range(1, 4):
        dovecot.append("INBOX", online_request(n))
    config = write_config(tmp_path, dovecot, smtpd)

    killed = run_cli(config, "run", "--once", "--now", NOW, faults="after_send=kill:1")
    assert killed.returncode == -9
    assert len(smtpd.messages) == 1
    assert dovecot.uids("Sent") == []

    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    sent_ids = sorted(m.message["Message-ID"] for m in smtpd.messages)
    assert len(sent_ids) == 3 == len(set(sent_ids))
    assert len(dovecot.uids("Sent")) == 3
    assert {row["reply_sent"] for row in staff_log(config).values()} == {True}
