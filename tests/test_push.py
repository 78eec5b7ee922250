"""The IDLE watcher against a real Dovecot: wakes on APPEND, gives up without IDLE, reconnects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from processor.config import MailboxConfig, load_config
from processor.push import (
    BACKOFF_CAP_SECONDS,
    IDLE_CAP_SECONDS,
    IdleMailbox,
    IdleWatcher,
    ImapIdleMailbox,
    backoff_delay,
    idle_timeout,
    start_push,
)
from tests.plugins.dovecot import Dovecot, MakeDovecot, mailbox_config
from tests.plugins.smtpd import SmtpServer
from tests.support import write_config

# Dovecot 2.3's post-login capabilities without IDLE.
NO_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT UNSELECT CHILDREN NAMESPACE "
    "UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE ESEARCH SEARCHRES LIST-STATUS BINARY MOVE"
)
MESSAGE = (
    b"From: Resident <resident@example.net>\r\nTo: committee@example.org\r\n"
    b"Subject: Attending\r\nMessage-ID: <push-1@example.net>\r\n\r\nA seat please.\r\n"
)


class Wakes:
    """A wake() callback that counts its calls and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


def idle_config(server: Dovecot, tmp_path: Path) -> MailboxConfig:
    return mailbox_config(server, tmp_path, idle=True)


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def watch(
    server: Dovecot, tmp_path: Path, stop: threading.Event, wakes: Wakes, timeout: float = 1.0
) -> IdleWatcher:
    config = idle_config(server, tmp_path)

    def connect() -> IdleMailbox:
        return ImapIdleMailbox(config)

    # A short IDLE by default so the thread notices `stop` quickly at the end of the test.
    watcher = IdleWatcher(connect, wakes, stop, timeout=timeout)
    watcher.start()
    return watcher


def wakes_after_append(server: Dovecot, wakes: Wakes, within: float) -> bool:
    wakes.event.clear()
    started = time.monotonic()
    server.append("INBOX", MESSAGE)
    return wakes.event.wait(timeout=max(0.0, started + within - time.monotonic()))


def test_it_wakes_the_worker_within_a_second_of_an_append(
    dovecot: Dovecot, tmp_path: Path, stop: threading.Event
) -> None:
    wakes = Wakes()
    watcher = watch(dovecot, tmp_path, stop, wakes)
    assert wait_until(lambda: watcher.supported is True, 5.0)
    time.sleep(0.2)  # into IDLE: the APPEND must be announced, not found at SELECT

    assert wakes_after_append(dovecot, wakes, within=1.0)
    assert wakes.count == 1
    stop.set()
    watcher.join(timeout=5.0)
    assert not watcher.is_alive()


def test_it_sees_a_change_that_was_waiting_when_idle_began(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    # Mail that arrives between two IDLEs is announced with the next one's "+ idling",
    # in the same packet; it must end the wait, not sit unseen until the IDLE times out
    # (in the worker: a whole poll interval).
    mailbox = ImapIdleMailbox(idle_config(dovecot, tmp_path))
    try:
        assert mailbox.supports_idle()  # connected, INBOX selected, not idling
        dovecot.append("INBOX", MESSAGE)
        started = time.monotonic()
        assert mailbox.idle_wait(timeout=20.0)
        assert time.monotonic() - started < 10.0, "the change waited for the IDLE timeout"
    finally:
        mailbox.close()


def test_it_halts_at_once_in_the_middle_of_a_long_idle(
    dovecot: Dovecot, tmp_path: Path, stop: threading.Event
) -> None:
    wakes = Wakes()
    watcher = watch(dovecot, tmp_path, stop, wakes, timeout=600.0)
    assert wait_until(lambda: watcher.supported is True, 5.0)
    time.sleep(0.2)

    started = time.monotonic()
    watcher.halt()
    watcher.join(timeout=5.0)
    assert not watcher.is_alive()
    assert time.monotonic() - started < 1.0
    assert wakes.count == 0


def test_it_does_not_wake_while_nothing_arrives(
    dovecot: Dovecot, tmp_path: Path, stop: threading.Event
) -> None:
    wakes = Wakes()
    watcher = watch(dovecot, tmp_path, stop, wakes)
    assert wait_until(lambda: watcher.supported is True, 5.0)
    time.sleep(2.5)  # more than two re-issued IDLEs of 1 s each
    assert wakes.count == 0
    assert watcher.is_alive()


def test_it_returns_when_the_server_has_no_idle(
    make_dovecot: MakeDovecot, tmp_path: Path, stop: threading.Event
) -> None:
    server = make_dovecot(imap_capability=NO_IDLE)
    wakes = Wakes()
    watcher = watch(server, tmp_path, stop, wakes)
    watcher.join(timeout=5.0)

    assert not watcher.is_alive()
    assert watcher.supported is False
    assert wakes.count == 0


def test_it_reconnects_after_a_server_restart_and_still_wakes(
    dovecot: Dovecot, tmp_path: Path, stop: threading.Event
) -> None:
    wakes = Wakes()
    watcher = watch(dovecot, tmp_path, stop, wakes)
    assert wait_until(lambda: watcher.supported is True, 5.0)

    dovecot.stop()
    time.sleep(0.5)
    dovecot.start()
    # Back within the first backoffs (0.5-1 s, then 1-2 s); mail that came meanwhile
    # announced itself to nobody, so coming back wakes the worker once.
    assert wait_until(lambda: watcher.reconnects == 1, 10.0)
    assert wakes.count == 1
    time.sleep(0.2)

    assert wakes_after_append(dovecot, wakes, within=1.0)
    assert watcher.is_alive()


def test_it_starts_only_for_imap_with_idle_asked_for(
    dovecot: Dovecot, tmp_path: Path, stop: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", dovecot.password)
    smtpd = SmtpServer()  # never started: only its address goes into the config
    polling = load_config(write_config(tmp_path, dovecot, smtpd))
    assert start_push(polling, Wakes(), stop) is None

    pushing = load_config(write_config(tmp_path, dovecot, smtpd, mailbox_extra="idle = true"))
    wakes = Wakes()
    watcher = start_push(pushing, wakes, stop)
    assert watcher is not None
    assert wait_until(lambda: watcher.supported is True, 5.0)
    time.sleep(0.2)
    assert wakes_after_append(dovecot, wakes, within=1.0)


def test_it_reissues_idle_well_inside_29_minutes() -> None:
    assert idle_timeout(60.0) == 60.0
    assert idle_timeout(3600.0) == IDLE_CAP_SECONDS < 29 * 60


def test_it_backs_off_with_jitter_up_to_a_cap() -> None:
    first = [backoff_delay(1) for _ in range(50)]
    late = [backoff_delay(30) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in first)
    assert all(BACKOFF_CAP_SECONDS / 2 <= d <= BACKOFF_CAP_SECONDS for d in late)
    assert len(set(late)) > 1
