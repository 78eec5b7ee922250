"""Push: a thread that waits in IMAP IDLE on its own connection and wakes the worker.

The worker keeps its interval poll; this only brings the next cycle forward when the
server announces new mail. It gives up (and the poll carries on alone) when the server
has no IDLE, and reconnects with bounded, jittered backoff when the connection drops.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Protocol

from processor.config import Config
from processor.errors import PermanentError, ProcessorError, TransientError
from processor.imap import ImapMailbox

log = logging.getLogger(__name__)

# RFC 2177: servers may log a client off after 30 minutes of inactivity, so IDLE must
# be re-issued "at least every 29 minutes"; 20 leaves room for slow networks.
IDLE_CAP_SECONDS = 20 * 60
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


class IdleMailbox(Protocol):
    """The part of a mailbox connection the watcher uses."""

    def supports_idle(self) -> bool: ...

    def idle_wait(self, timeout: float) -> bool: ...

    def interrupt(self) -> None:
        """From another thread: cut the connection so a waiting idle_wait returns."""
        ...

    def close(self) -> None: ...


class ImapIdleMailbox(ImapMailbox):
    """An ImapMailbox that can say whether the server speaks IDLE (RFC 2177)."""

    def supports_idle(self) -> bool:
        # idle_wait alone cannot tell "no IDLE" from "nothing happened": both are False.
        with self._translated("reading capabilities"):
            return bool(self._connected().has_capability("IDLE"))

    def interrupt(self) -> None:
        # A socket shutdown wakes the blocked read in the other thread at once; the
        # IMAP stream is not touched, so there is no interleaving to fear.
        self._drop()


def idle_timeout(poll_seconds: float) -> float:
    """How long one IDLE lasts before it is re-issued."""
    return max(1.0, min(IDLE_CAP_SECONDS, poll_seconds))


def backoff_delay(failures: int) -> float:
    """Exponential backoff with full jitter, capped: reconnect storms spread out."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, failures - 1))
    return random.uniform(ceiling / 2, ceiling)


class IdleWatcher(threading.Thread):
    """Waits in IDLE on its own connection; calls `wake()` when new mail arrives."""

    def __init__(
        self,
        connect: Callable[[], IdleMailbox],
        wake: Callable[[], None],
        stop: threading.Event,
        *,
        timeout: float = IDLE_CAP_SECONDS,
    ) -> None:
        super().__init__(name="imap-idle", daemon=True)
        self._connect = connect
        self._wake = wake
        self._stop_event = stop
        self._timeout = min(timeout, IDLE_CAP_SECONDS)
        self.supported: bool | None = None  # None until the server has been asked
        self.reconnects = 0
        self._mailbox: IdleMailbox | None = None

    def halt(self) -> None:
        """Stop now, even in the middle of a 20-minute IDLE (for a prompt shutdown)."""
        self._stop_event.set()
        mailbox = self._mailbox
        if mailbox is not None:
            mailbox.interrupt()

    def run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            mailbox = self._mailbox = self._connect()
            try:
                if not mailbox.supports_idle():
                    self.supported = False
                    log.info("the IMAP server has no IDLE; the worker keeps polling")
                    return
                self.supported = True
                if failures:
                    # Mail that came while we were away announced itself to nobody.
                    self.reconnects += 1
                    log.info("IDLE connection is back")
                    self._wake()
                failures = 0
                self._watch(mailbox)
            except TransientError as exc:
                if self._stop_event.is_set():
                    return  # halted: the cut connection is ours
                failures += 1
                delay = backoff_delay(failures)
                log.warning("IDLE connection lost (%s); retrying in %.1f s", exc, delay)
                self._stop_event.wait(delay)
            except PermanentError as exc:
                log.error("IDLE stopped (%s); the worker keeps polling", exc)
                return
            finally:
                self._mailbox = None
                mailbox.close()

    def _watch(self, mailbox: IdleMailbox) -> None:
        while not self._stop_event.is_set():
            if mailbox.idle_wait(self._timeout):
                self._wake()


def start_push(
    config: Config,
    wake: Callable[[], None],
    stop: threading.Event,
    tokens: Callable[[], str] | None = None,
) -> IdleWatcher | None:
    """Start an IdleWatcher when the config asks for IDLE over IMAP; else None."""
    if not (config.mailbox.idle and config.mailbox.kind == "imap"):
        return None
    if tokens is None and config.mailbox.auth == "oauth2":
        from processor.services import outlook_tokens

        tokens = outlook_tokens(config)

    def connect() -> IdleMailbox:
        return ImapIdleMailbox(config.mailbox, token_provider=tokens)

    def safe_wake() -> None:
        try:
            wake()
        except (ProcessorError, RuntimeError) as exc:  # e.g. scheduler already shut down
            log.warning("could not wake the worker: %s", exc)

    watcher = IdleWatcher(
        connect, safe_wake, stop, timeout=idle_timeout(config.worker.poll_seconds)
    )
    watcher.start()
    return watcher
