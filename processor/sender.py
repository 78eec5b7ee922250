"""Replies go out while the cycle is still deciding: threads, or a process, of their own.

The main thread commits a batch of decisions and pokes; the sender sends whatever is
due by then over the cycle's one SMTP connection and waits for the next poke. Each
group it sends goes to the filing threads (two IMAP sessions, FILING_CONNECTIONS), one
of which files the group's Sent copies (one MULTIAPPEND) and marks its rows done.
Deciding is CPU, sending waits on the SMTP server and filing on the IMAP server, so
the three overlap instead of adding up (bench/backlog.py).

Each thread has its own SQLite connection and mailbox session: none of these may be
shared between threads. The sender only ever sees committed decisions, and every send
follows the outbox protocol of `ReplySession`, so a crash anywhere leaves nothing the
next cycle cannot settle: a reply the server took is in the sent journal at once.

With plain SMTP that journal line is the only record of a 250, and a sending thread
beside the deciding one may wait for the interpreter lock before it can write it, so
there a large cycle sends from a process of its own (reply_process.py) and a small
one sends after deciding.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

from processor.dispatch import (
    ReplySession,
    dispatch_replies,
    file_sent_copies,
    files_own_copies,
)
from processor.journal import SentJournal
from processor.records import OutboxItem
from processor.reply_process import ReplyProcess
from processor.store import Store

if TYPE_CHECKING:
    from processor.services import CycleReport, Services

log = logging.getLogger(__name__)

# The sending thread waits on the SMTP server four times a reply, then needs the GIL
# back from the deciding thread, which gives it up every switch interval. At the
# default 5 ms that wait, not the server, would pace the replies. The deciding thread
# loses little: it is asked only when the sender has something to do.
SWITCH_INTERVAL = 0.00002  # seconds
# In the reply process no thread decides; the filing thread's bursts are short, and a
# switch this often costs the process more CPU than it saves waiting
# (bench/backlog.py: 1 ms beat both 20 us and the default 5 ms).
REPLY_PROCESS_SWITCH_INTERVAL = 0.001  # seconds
# IMAP sessions filing the Sent copies. The server writes and syncs a file per copy
# (Dovecot's maildir), one copy at a time per session: with one session, the filing
# fell behind the sending once a reply no longer waited for its journal line's fsync
# (bench/backlog.py).
FILING_CONNECTIONS = 2


def overlap_is_safe(svc: Services) -> bool:
    """Whether a sending thread may run beside the deciding one: when a reply in doubt
    after a crash is settled exactly, because the server files the Sent copy before it
    answers (Graph, Exchange Online's SMTP with `smtp.server_files_sent`, the file
    transport).

    With plain SMTP the only record of a 250 is our journal line, and a thread must get
    back to Python to write it; alongside a busy deciding thread that takes long enough
    for a kill to land in between (bench/crash_matrix.py saw it).
    """
    return files_own_copies(svc)


class RepliesAlongside:
    """`with RepliesAlongside(svc, report) as replies:` ... `replies.poke()` per commit.

    Leaving the block sends what is still due (reminders and the digest included) and
    waits for the senders. How the replies go out:

    - where `overlap_is_safe` (or `threads`), from a sending thread as decisions commit;
    - plain SMTP, a cycle of `worker.reply_process_from` messages or more: from a
      reply process as decisions commit;
    - plain SMTP, a smaller cycle: in the leaving, from this thread, so each 250 is
      journalled at once; only the filing is on a thread of its own;
    - without `svc.reopen` (no second set of adapters): in the leaving, no threads.
    """

    def __init__(
        self,
        svc: Services,
        report: CycleReport,
        *,
        threads: bool = False,
        switch_interval: float = SWITCH_INTERVAL,
    ) -> None:
        self._svc = svc
        self._report = report
        self._threads = threads or overlap_is_safe(svc)
        self._switch_interval = switch_interval
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._copies: queue.SimpleQueue[list[OutboxItem] | None] = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self._settled = False  # a sending session read the old journal into the store
        self._sending: threading.Thread | None = None
        self._filing: list[threading.Thread] = []
        self._process: ReplyProcess | None = None
        self._interval = sys.getswitchinterval()

    def __enter__(self) -> RepliesAlongside:
        svc = self._svc
        if svc.reopen is None or svc.stop.is_set():
            return self
        threshold = svc.config.worker.reply_process_from
        if not self._threads and 0 < threshold <= self._report.seen:
            self._process = ReplyProcess(svc)
            return self
        sys.setswitchinterval(self._switch_interval)
        filers = 1 if files_own_copies(svc) else FILING_CONNECTIONS
        self._filing = [
            threading.Thread(target=self._guarded(self._file), name="filing", daemon=True)
            for _ in range(filers)
        ]
        for thread in self._filing:
            thread.start()
        if self._threads:
            self._sending = threading.Thread(
                target=self._guarded(self._send), name="replies", daemon=True
            )
            self._sending.start()
        return self

    def poke(self) -> None:
        """Decisions were committed: send what they made due."""
        if self._process is not None:
            self._process.poke()
        self._wake.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Committed decisions get their replies even when the cycle failed later (an
        # IMAP outage at the move, say); only a stop, or an interrupt, holds them back.
        failed_hard = exc_type is not None and not issubclass(exc_type, Exception)
        send_rest = not self._svc.stop.is_set() and not failed_hard
        if self._process is not None:
            self._process.finish(self._report, send_rest=send_rest, stop=self._svc.stop)
            return
        if not self._filing:
            if send_rest:
                dispatch_replies(self._svc, self._report)
            return
        try:
            if self._sending is not None:
                self._closing.set()
                self._wake.set()
                self._sending.join()
            elif send_rest:
                self._send_here()
        finally:
            for _ in self._filing:  # one end for each, after the last group queued
                self._copies.put(None)
            for thread in self._filing:
                thread.join()
            sys.setswitchinterval(self._interval)
        # Spent when a session read the old journal into the store and every line it
        # wrote since is done; otherwise the next session settles what it holds.
        if self._settled and not self._errors:
            SentJournal(self._svc.store.path).clear()
        if self._errors and exc_type is None:
            raise self._errors[0]

    def _send_here(self) -> None:
        """Plain SMTP, a small cycle: send from this thread, the only one wanting the
        interpreter but for the filing thread's moments, so each 250 is journalled at
        once."""
        try:
            with self._session(self._svc) as session:
                session.send_due()
        except BaseException as exc:
            self._errors.append(exc)  # so the filing thread keeps the journal
            raise

    @contextmanager
    def _session(self, svc: Services) -> Iterator[ReplySession]:
        """A sending session whose groups go to the filing thread, which alone may mark
        the journal spent (once everything this session wrote in it is done)."""
        session = ReplySession(svc, self._report, file_copies=self._copies.put)
        try:
            yield session
        finally:
            self._settled = session.settled
            session.close(done=False)

    def _guarded(self, work: Callable[[Services], None]) -> Callable[[], None]:
        def run() -> None:
            assert self._svc.reopen is not None
            mailbox, transport = self._svc.reopen()
            store = Store(self._svc.store.path)
            try:
                work(replace(self._svc, store=store, mailbox=mailbox, transport=transport))
            except BaseException as exc:  # handed to the main thread when it leaves
                log.exception("the %s thread failed", threading.current_thread().name)
                self._errors.append(exc)
            finally:
                mailbox.close()
                store.close()

        return run

    def _send(self, svc: Services) -> None:
        with self._session(svc) as session:
            while True:
                self._wake.wait()
                self._wake.clear()
                last = self._closing.is_set()  # read first: a poke before it is served
                session.send_due()
                if last:
                    return

    def _file(self, svc: Services) -> None:
        while (items := self._copies.get()) is not None:
            file_sent_copies(svc, items)
