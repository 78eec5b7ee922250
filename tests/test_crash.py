"""Exactly once under SIGKILL: at every named fault point, and at random moments."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.faults import POINTS
from tests.crashkit import Tally, named_point_scenario, random_kill_scenario
from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer

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
