"""`run`: the long-running worker wakes on IMAP IDLE, polls without it, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import cli_command, cli_env, request, start_cli, wait_for, write_config


@pytest.mark.parametrize(("idle", "poll"), [(True, 300), (False, 1)])
def test_it_answers_mail_that_arrives_while_running_and_stops_on_sigterm(
    idle: bool, poll: int, tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    config = write_config(
        tmp_path, dovecot, smtpd, mailbox_extra=f"idle = {'true' if idle else 'false'}"
    )
    config.write_text(
        config.read_text().replace("[worker]\n", f"[worker]\npoll_seconds = {poll}\n")
    )
    worker = start_cli(config, "run", "--now", "2026-12-01T09:00:00+00:00")
    try:
        time.sleep(1.0)  # the first cycle (an empty inbox) is done and, with IDLE, waiting
        dovecot.append(
            "INBOX",
            request(
                1,
                "Ann <ann@residents.example>",
                "Committee",
                "Please send me the Teams link for 10 December.",
            ),
        )
        # With a 300 s poll, only IDLE can bring the reply within seconds.
        assert wait_for(lambda: len(smtpd.messages) == 1, 10), "no reply while running"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "stopping after the current message" in stderr


def test_sigterm_to_the_worker_and_its_reply_process_stops_both_after_the_reply_in_hand(
    tmp_path: Path, dovecot: Dovecot, smtpd: SmtpServer
) -> None:
    # As systemd stops a service: SIGTERM to every process of the worker's group. The
    # reply process ignores it and stops when the worker says so, after the reply it
    # has in hand; a later run sends each remaining reply once.
    for n in range(1, 11):
        body = f"Please send me the Teams link for 10 December.\n\nResident {n}"
        dovecot.append("INBOX", request(n, f"R{n} <r{n}@residents.example>", "Hi", body))
    config = write_config(tmp_path, dovecot, smtpd)
    config.write_text(
        config.read_text().replace("[worker]\n", "[worker]\nreply_process_from = 1\n")
    )
    smtpd.file_sent_copy = lambda raw: time.sleep(0.3)  # a slow server, before each 250
    worker = start_cli(config, "run", "--now", "2026-12-01T09:00:00+00:00", start_new_session=True)
    try:
        assert wait_for(lambda: len(smtpd.messages) >= 1, 20), "no reply went out"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    sent_then = len(smtpd.messages)
    assert sent_then < 10, "the reply process went on sending after the stop"
    assert "the reply process failed" not in stderr

    smtpd.file_sent_copy = None
    once = subprocess.run(
        cli_command(config, "run", "--once", "--now", "2026-12-01T09:00:00+00:00"),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert once.returncode == 0, once.stderr
    recipients = sorted(m.rcpt_tos[0] for m in smtpd.messages)
    assert recipients == sorted(f"r{n}@residents.example" for n in range(1, 11))
