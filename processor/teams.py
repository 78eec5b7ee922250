"""The cycle's Teams updates, on a thread of their own beside deciding and filing.

While the worker decides, the thread gets each meeting's event ready (created, or
brought up to date) as soon as the meeting has attendee changes waiting, so that when
deciding ends only the one PATCH per meeting is left (`dispatch.dispatch_calendar`),
and it goes out while the messages are filed. The thread has its own store connection
and is the only user of the calendar adapter meanwhile.

The events it gets ready are saved when the thread ends, not before: every reply of
one cycle says what the store knew when the cycle began (a join link, or none), not
what the thread's timing happened to allow.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

from processor.dispatch import (
    CALENDAR_KINDS,
    dispatch_calendar,
    meeting_fingerprint,
    updated_event,
)
from processor.errors import PermanentError, TransientError
from processor.ports import EventRef
from processor.store import Store

if TYPE_CHECKING:
    from processor.services import CycleReport, Services

log = logging.getLogger(__name__)


class TeamsAlongside:
    """`with TeamsAlongside(svc, report) as teams:` ... `teams.poke()` per commit, then
    `teams.dispatch()` once deciding is over; `wait()` or leaving the block waits for
    the update.

    Leaving without `dispatch` (a failed or stopped cycle) sends no update: the next
    cycle does. A calendar error in preparing is only logged; the update tries again
    and reports it.
    """

    def __init__(self, svc: Services, report: CycleReport) -> None:
        self._svc = svc
        self._report = report
        self._wake = threading.Event()
        self._dispatch = threading.Event()
        self._leaving = threading.Event()
        self._ready: dict[str, tuple[EventRef, str]] = {}  # meeting id -> (event, fingerprint)
        self._seen: set[str] = set()  # meetings looked at: ready, up to date or failing
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TeamsAlongside:
        if self._svc.calendar is not None and not self._svc.stop.is_set():
            self._thread = threading.Thread(target=self._run, name="teams", daemon=True)
            self._thread.start()
        return self

    def poke(self) -> None:
        """Decisions were committed: get the events of meetings they changed ready."""
        self._wake.set()

    def dispatch(self) -> None:
        """Deciding is over: the one attendee update per meeting, now."""
        self._dispatch.set()
        self._wake.set()

    def wait(self) -> None:
        """Until the thread is done (the update, if asked for); its error, raised."""
        self._end()
        if self._errors:
            raise self._errors[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.wait()
        else:
            self._end()

    def _end(self) -> None:
        if self._thread is not None:
            self._leaving.set()
            self._wake.set()
            self._thread.join()

    def _run(self) -> None:
        store = Store(self._svc.store.path)
        svc = replace(self._svc, store=store)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._dispatch.is_set() or self._leaving.is_set():
                    break
                self._prepare(svc)
            for meeting_id, (event, fingerprint) in self._ready.items():
                store.save_event(meeting_id, event, fingerprint)
            if self._dispatch.is_set():
                dispatch_calendar(svc, self._report)
        except BaseException as exc:  # handed to the cycle when the block ends
            log.exception("the Teams thread failed")
            self._errors.append(exc)
        finally:
            store.close()

    def _prepare(self, svc: Services) -> None:
        assert svc.calendar is not None
        if self._seen.issuperset(m.id for m in svc.config.meetings):
            return
        for meeting_id in svc.store.meetings_due(svc.clock(), CALENDAR_KINDS) - self._seen:
            self._seen.add(meeting_id)
            meeting = svc.config.meeting(meeting_id)
            if meeting is None:
                continue
            try:
                event = updated_event(svc, meeting)
            except (TransientError, PermanentError) as exc:
                log.info("could not get the Teams event of %s ready: %s", meeting_id, exc)
                continue
            if event is not None:
                self._ready[meeting_id] = (event, meeting_fingerprint(meeting))
