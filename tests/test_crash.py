"""Exactly once under SIGKILL: at every named fault point, and at random moments."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.faults import POINTS
from tests.crashkit import Tally, named_point_scenario, random_kill_scenario, scenario_config
from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import NOW, request, run_cli, staff_log, write_config

# Where to die: the second pass (mid-batch) of each per-message point; the calendar
# PATCH and the move happen once a cycle, so there the first pass is the only one.
ONCE_A_CYCLE = {"after_calendar", "before_move"}
KILL_POINTS = [(p, 1 if p in ONCE_A_CYCLE else 2) for p in POINTS if p != "understand"]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "nth"), KILL_POINTS)
def test_it_gives_one_reply_and_one_invite_after_a_kill_at(
    point: str,
    nth: int,
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph_fake: GraphFake,
) -> None:
    result = named_point_scenario(tmp_path, dovecot, smtpd, graph_fake, point, nth)
    assert result.kills >= 1, f"the worker never reached {point}"
    assert result == Tally(0, 0, 0, 0, result.kills)


# Random kills against a server that files its own Sent copy (Exchange Online's way):
# with plain SMTP a kill between the server's 250 and our APPEND to Sent can send one
# reply twice, which bench/crash_matrix.py measures in a row of its own.
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_gives_one_reply_and_one_invite_after_random_kills(
    seed: int, tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    result = random_kill_scenario(
        tmp_path, dovecot, smtpd, graph_fake, seed, server_files_sent=True
    )
    assert result == Tally(0, 0, 0, 0, result.kills)


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
        sender = f"Resident {n} <resident{n}@residents.example>"
        dovecot.append("INBOX", request(n, sender, "Attending", "Online please, 10 December."))
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
