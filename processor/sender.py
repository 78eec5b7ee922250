"""Replies go out while the cycle is still deciding: a thread of its own.

The main thread commits a batch of decisions and pokes; this thread sends whatever is
due by then and waits for the next poke. Deciding is CPU and sending is waiting on the
SMTP server, so the two overlap instead of adding up (bench/backlog.py).

The thread has its own SQLite connection, mailbox session (Sent copies, in-doubt
searches) and transport: none of these may be shared between threads. It only ever
sees committed decisions, and every send follows the same outbox protocol as
`dispatch_replies`, so a crash anywhere leaves nothing the next cycle cannot settle.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

from processor.dispatch import ReplySession, dispatch_replies
from processor.store import Store

if TYPE_CHECKING:
    from processor.pipeline import CycleReport, Services

log = logging.getLogger(__name__)


class RepliesAlongside:
    """`with RepliesAlongside(svc, report) as replies:` ... `replies.poke()` per commit.

    Leaving the block sends what is still due (reminders and the digest included) and
    waits for the thread. Without `svc.reopen` (no second set of adapters), replies are
    sent in the leaving instead, as one pass.
    """

    def __init__(self, svc: Services, report: CycleReport) -> None:
        self._svc = svc
        self._report = report
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RepliesAlongside:
        if self._svc.reopen is not None:
            self._thread = threading.Thread(target=self._run, name="replies", daemon=True)
            self._thread.start()
        return self

    def poke(self) -> None:
        """Decisions were committed: send what they made due."""
        self._wake.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is None:
            if exc_type is None and not self._svc.stop.is_set():
                dispatch_replies(self._svc, self._report)
            return
        self._closing.set()
        self._wake.set()
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def _run(self) -> None:
        assert self._svc.reopen is not None
        mailbox, transport = self._svc.reopen()
        store = Store(self._svc.store.path)
        svc = replace(self._svc, store=store, mailbox=mailbox, transport=transport)
        session = ReplySession(svc, self._report)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                last = self._closing.is_set()  # read first: a poke before it is served
                session.send_due()
                if last:
                    return
        except BaseException as exc:  # handed to the main thread when it leaves
            log.exception("the reply thread failed")
            self._error = exc
        finally:
            session.close()
            mailbox.close()
            store.close()
