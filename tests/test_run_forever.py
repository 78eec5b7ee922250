"""`run`: the long-running worker wakes on IMAP IDLE, polls without it, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import cli_command, cli_env, request, write_config


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


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
    worker = subprocess.Popen(
        cli_command(config, "run", "--now", "2026-12-01T09:00:00+00:00"),
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
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
