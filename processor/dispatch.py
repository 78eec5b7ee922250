"""Carry out due outbox rows: Teams attendee changes per meeting, then replies.

A row is marked `sending` before the outside call and `done` after it (the
Healthchecks pattern), so a crash in between leaves it visibly in doubt; the next
cycle settles it without doubling the effect (`already_sent`). A reply's 250 is
recorded (`sent`) the moment it arrives, and its Sent copy is filed with its group's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from processor import faults
from processor.errors import PermanentError, TransientError
from processor.journal import SentJournal
from processor.models import Meeting
from processor.ports import Attendee, Connection, EventRef, KeepsSentCopies
from processor.records import OutboxItem

if TYPE_CHECKING:
    from processor.services import CycleReport, Services

log = logging.getLogger(__name__)

CALENDAR_KINDS = ("attendee_add", "attendee_remove")
# Replies claimed in one commit whose Sent copies are filed in one MULTIAPPEND.
REPLY_GROUP = 50


def dispatch(svc: Services, report: CycleReport) -> None:
    """Everything due now: calendar first (so a join link exists), then replies."""
    if svc.calendar is not None:
        dispatch_calendar(svc, report)
    dispatch_replies(svc, report)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with full jitter, at least what the server asked for."""
    ceiling = min(3600.0, 30.0 * 2 ** max(0, attempts - 1))
    return timedelta(seconds=max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling)))


def record_failure(svc: Services, items: Sequence[OutboxItem], exc: Exception) -> None:
    ids = [i.id for i in items]
    attempts = max(i.attempts for i in items) + 1
    if isinstance(exc, TransientError) and attempts < svc.config.worker.max_attempts:
        retry_after = getattr(exc, "retry_after", None)
        svc.store.postpone(ids, str(exc), svc.clock() + backoff(attempts, retry_after))
    else:
        svc.store.fail(ids, f"{type(exc).__name__}: {exc}")


def meeting_fingerprint(meeting: Meeting) -> str:
    """What the Teams event was made from; a change in config updates the event."""
    fields = (meeting.title, meeting.start.isoformat(), meeting.end.isoformat(), meeting.venue)
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:16]


def dispatch_calendar(svc: Services, report: CycleReport) -> None:
    """One attendee PATCH per meeting per cycle, whatever the number of residents."""
    assert svc.calendar is not None
    by_meeting: dict[str, list[OutboxItem]] = defaultdict(list)
    for item in svc.store.due_outbox(svc.clock(), CALENDAR_KINDS):
        if item.meeting_id:
            by_meeting[item.meeting_id].append(item)
    refresh_changed_events(svc, report, skip=set(by_meeting))
    for meeting_id, items in by_meeting.items():
        meeting = svc.config.meeting(meeting_id)
        if meeting is None:
            svc.store.fail([i.id for i in items], f"meeting {meeting_id} is no longer configured")
            continue
        svc.store.claim([i.id for i in items])
        try:
            event = current_event(svc, meeting)
            add, remove = net_changes(items)
            event = svc.calendar.update_attendees(event, add, remove)
            faults.point("after_calendar")
            svc.store.save_event(meeting_id, event, meeting_fingerprint(meeting))
            svc.store.finish([i.id for i in items], "dry_run" if svc.calendar.dry_run else "done")
            report.calendar_changes += len(items)
        except (TransientError, PermanentError) as exc:
            log.warning("Teams update for %s failed: %s", meeting_id, exc)
            report.errors.append(f"calendar {meeting_id}: {exc}")
            record_failure(svc, items, exc)


def current_event(svc: Services, meeting: Meeting) -> EventRef:
    """The meeting's event, created or brought up to date if need be, and saved."""
    event = updated_event(svc, meeting)
    if event is None:
        known = svc.store.event(meeting.id)
        assert known is not None  # updated_event found it current
        return known[0]
    svc.store.save_event(meeting.id, event, meeting_fingerprint(meeting))
    return event


def updated_event(svc: Services, meeting: Meeting) -> EventRef | None:
    """The meeting's event created (same transactionId on a retry) or brought up to
    date at Graph when the store has none or a stale one, not yet saved; None when
    the store's is current."""
    assert svc.calendar is not None
    known = svc.store.event(meeting.id)
    if known is not None and known[1] == meeting_fingerprint(meeting):
        return None
    return svc.calendar.ensure_event(meeting, known[0] if known else None)


def refresh_changed_events(svc: Services, report: CycleReport, skip: set[str]) -> None:
    """A meeting whose time, title or venue changed in config gets its event updated."""
    for meeting in svc.config.meetings:
        known = svc.store.event(meeting.id)
        if meeting.id in skip or known is None or known[1] == meeting_fingerprint(meeting):
            continue
        try:
            current_event(svc, meeting)
            log.info("updated the Teams event of %s to match the config", meeting.id)
        except (TransientError, PermanentError) as exc:
            report.errors.append(f"calendar {meeting.id}: {exc}")


def net_changes(items: Sequence[OutboxItem]) -> tuple[list[Attendee], list[str]]:
    """The last word per resident wins: add then remove in one cycle is a remove."""
    final: dict[str, tuple[str, Attendee]] = {}
    for item in items:  # in id order, so later rows override earlier ones
        data = json.loads(item.payload)
        final[data["address"]] = (item.kind, Attendee(data["address"], data.get("name")))
    add = [a for kind, a in final.values() if kind == "attendee_add"]
    remove = [a.address for kind, a in final.values() if kind == "attendee_remove"]
    return add, remove


def dispatch_replies(svc: Services, report: CycleReport) -> None:
    """Send every due reply now, over one transport connection."""
    session = ReplySession(svc, report)
    try:
        session.send_due()
    except BaseException:
        session.close(done=False)
        raise
    session.close(done=True)


class ReplySession:
    """One cycle's sending: one transport connection, opened when first needed.

    `send_due` may be called again and again as decisions commit (the cycle's reply
    thread does, see sender.py). After the connection fails or the server defers a
    reply, it sends nothing more this cycle: the rest stay pending for the next.

    A reply row goes pending -> sending (claimed, a group in one commit) -> sent (the
    server said 250: a line in the sent journal at once, see journal.py) -> done (its
    Sent copy filed, with its group's, by `file_copies`: `file_sent_copies` here, or
    another thread's queue). A crash leaves `sending` rows in doubt, which the journal
    or `already_sent` settles, and `sent` rows, which only lack their copy.
    """

    def __init__(
        self,
        svc: Services,
        report: CycleReport,
        file_copies: Callable[[list[OutboxItem]], None] | None = None,
    ) -> None:
        self.svc = svc
        self.report = report
        self.halted = False
        self.journal = SentJournal(svc.store.path)
        self._file_copies = file_copies or partial(file_sent_copies, svc)
        self.settled = False  # the journal of a crashed session is in the store
        # Rows this session has dealt with: a row whose copy the filing thread has yet
        # to file is still `sending` in the store, and must not look in doubt to us.
        self._handled: set[int] = set()
        self._connection: Connection | None = None
        self._stack = ExitStack()

    def send_due(self) -> None:
        if self.halted or self.svc.stop.is_set():
            return
        first = not self.settled
        if first:  # what a crashed session's journal says was accepted
            self.svc.store.settle_sent(self.journal.pending())
            self.journal.clear()
            self.settled = True
        items = self.svc.store.due_outbox(
            self.svc.clock(), ("reply",), leftovers=first, skip=self._handled
        )
        self._handled.update(item.id for item in items)
        try:
            if items:
                self._connect()  # before any claim: a server that is down faults no row
            for start in range(0, len(items), REPLY_GROUP):
                if self.svc.stop.is_set():
                    return
                if not self._send_group(items[start : start + REPLY_GROUP]):
                    self.halted = True  # the server is unwell
                    return
        except (TransientError, PermanentError) as exc:
            # The connection itself failed (server down, login refused): no row is at
            # fault, so every due row stays pending for a later cycle.
            self.report.errors.append(f"transport: {exc}")
            log.warning("reply transport unavailable: %s", exc)
            self.halted = True

    def _send_group(self, group: Sequence[OutboxItem]) -> bool:
        """Claim, send each, file the copies; False when the server defers a reply."""
        svc = self.svc
        svc.store.claim([item.id for item in group if item.state == "pending"])
        accepted: list[OutboxItem] = []
        for position, item in enumerate(group):
            if svc.stop.is_set():  # told to stop, or the worker died: no more new sends
                self._give_back(group[position:])
                self._file_copies(accepted)
                return False
            if item.state == "sent":
                accepted.append(item)
                continue
            if item.state == "sending" and already_sent(svc, item):
                log.info("%s was sent before a crash; not sending again", item.recipient)
                svc.store.finish([item.id])
                continue
            faults.point("before_send")
            try:
                self._connect().send_raw(
                    item.payload,  # the bytes composed and stored at decision time
                    sender=svc.config.committee.address,
                    recipient=item.recipient,
                    message_id=reply_id(item),
                    # The last reply's line on disk before this one can be accepted.
                    before_content=self.journal.wait_durable,
                )
            except (TransientError, PermanentError) as exc:
                self.report.errors.append(f"reply {item.idempotency_key}: {exc}")
                record_failure(svc, [item], exc)
                if isinstance(exc, TransientError):
                    self._give_back(group[position + 1 :])
                    self._file_copies(accepted)
                    return False
                continue
            self.journal.record(item.idempotency_key)
            faults.point("after_send")
            accepted.append(item)
            self.report.replies_sent += 1
        self._file_copies(accepted)
        return True

    def _give_back(self, rest: Sequence[OutboxItem]) -> None:
        """Unclaim the rows of `rest` this session claimed. A row a crash left in doubt
        stays in doubt, to be looked for in Sent before it is sent."""
        self.svc.store.unclaim([item.id for item in rest if item.state == "pending"])

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = self._stack.enter_context(self.svc.transport.connect())
        return self._connection

    def close(self, *, done: bool) -> None:
        """`done`: every accepted reply's row is done, so the journal is spent."""
        try:
            self._stack.close()
        finally:
            if done and self.settled:
                self.journal.clear()
            else:
                self.journal.close()  # the next session settles what it holds


def file_sent_copies(svc: Services, items: Sequence[OutboxItem]) -> None:
    """After SMTP sends, file copies in Sent (one MULTIAPPEND), then mark the rows done.

    The copies are the staff's record of what went out. A server that files its own
    copy (Graph's Sent Items, `smtp.server_files_sent` for Exchange Online) needs none.
    A row still `sent` after a crash may have had its copy filed already: look first.
    """
    if not items:
        return
    if not files_own_copies(svc):
        unfiled = [
            item
            for item in items
            if item.state != "sent" or not svc.mailbox.find_in_sent(reply_id(item))
        ]
        try:
            svc.mailbox.append_sent(*(item.payload for item in unfiled))  # the bytes sent
        except (TransientError, PermanentError) as exc:
            log.warning("could not file %d Sent copies: %s", len(unfiled), exc)
    svc.store.finish([item.id for item in items])


def files_own_copies(svc: Services) -> bool:
    """Whether the server keeps the Sent copies itself (Graph, Exchange Online's SMTP
    with `smtp.server_files_sent`, the file transport): nothing for us to file."""
    return isinstance(svc.transport, KeepsSentCopies) or svc.config.smtp.server_files_sent


def reply_id(item: OutboxItem) -> str:
    return item.idempotency_key.removeprefix("reply:")


def already_sent(svc: Services, item: OutboxItem) -> bool:
    """For a row left `sending` by a crash: look for the reply before sending again."""
    if isinstance(svc.transport, KeepsSentCopies):
        return svc.transport.find_sent(reply_id(item))
    return svc.mailbox.find_in_sent(reply_id(item))
