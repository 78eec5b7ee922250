"""The whole path of one cycle, in order, on one screen.

    1. inventory  list what waits in the mailbox folder (sizes; UIDVALIDITY checked)
    2. fetch      BODY.PEEK[] by UID in chunks (large: text parts only; oversized: header)
    3. store      keep the raw bytes, deduplicated by Message-ID, before any side effect
                  (steps 3 to 7 run a fetch chunk at a time, a few commits per chunk)
    4. classify   automated mail (RFC 3834) is ignored
    5. understand what the resident asked for, completing a reply to our clarification
    6. decide     the outcome, from the request and what the store knows
    7. enqueue    the decision, registration, reply and Teams change in one transaction
    8. remind     queue reminders due (once each) and the staff's daily digest (once a day)
    9. dispatch   replies go out as each batch of decisions commits (sender.py);
                  then one Teams update per meeting (dispatch.py), on a thread while
   10. file       each decided message moves to Processed or Review

Steps 3 to 7 are deciding.py's, a fetch chunk at a time. A failure there is caught
per message: the message is referred to staff with the reason and the messages behind
it go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from processor import faults
from processor.deciding import handle_chunk
from processor.digest import enqueue_daily_digest
from processor.ports import MessageRef, ReadsTextParts
from processor.records import StoredMessage
from processor.reminders import enqueue_reminders
from processor.sender import RepliesAlongside
from processor.services import CycleReport, Services
from processor.teams import TeamsAlongside

log = logging.getLogger(__name__)

# A chunk holds at most this many bytes of mail (and `mailbox.fetch_chunk` messages).
CHUNK_BYTES = 8_000_000
# How long a cycle waits for the store lock: a worker killed a moment ago may leave its
# reply process finishing the reply in hand, holding the lock (reply_process.py).
LOCK_WAIT = 5.0  # seconds


def run_cycle(svc: Services) -> CycleReport:
    """One full cycle over every message now in the folder, then dispatch and filing."""
    report = CycleReport()
    svc.store.lock.acquire(wait=LOCK_WAIT)
    try:
        token, refs = take_inventory(svc)
        report.seen = len(refs)
        started = time.monotonic()
        with RepliesAlongside(svc, report) as replies, TeamsAlongside(svc, report) as teams:

            def committed() -> None:
                replies.poke()
                teams.poke()

            to_file = decide_all(svc, token, refs, report, committed)
            decided = time.monotonic()
            report.seconds_deciding = decided - started
            # Filing needs only the decisions, committed by now: the replies and the
            # Teams update go out meanwhile.
            if not svc.stop.is_set():
                teams.dispatch()
            faults.point("before_move")
            file_messages(svc, to_file, report)
            teams.wait()
            report.seconds_filing = time.monotonic() - decided
        report.seconds_finishing = time.monotonic() - decided
    finally:
        svc.store.lock.release()
    return report


def decide_all(
    svc: Services,
    token: str,
    refs: list[MessageRef],
    report: CycleReport,
    committed: Callable[[], None],
) -> dict[str, list[tuple[MessageRef, str]]]:
    """Steps 2 to 8: every message decided, a fetch chunk at a time; where each goes."""
    to_file: dict[str, list[tuple[MessageRef, str]]] = {"processed": [], "review": []}
    mb = svc.config.mailbox
    for chunk in chunked(fetch(svc, token, refs), mb.fetch_chunk, CHUNK_BYTES):
        if svc.stop.is_set():
            break
        for ref, message_id, destination in handle_chunk(svc, token, chunk, report, committed):
            if destination in to_file:
                to_file[destination].append((ref, message_id))
    if not svc.stop.is_set():
        report.reminders = enqueue_reminders(svc)
        enqueue_daily_digest(svc)
        committed()
    return to_file


def take_inventory(svc: Services) -> tuple[str, list[MessageRef]]:
    """List the folder; a changed UIDVALIDITY means old keys are void (dedupe still holds)."""
    token = svc.mailbox.sync_token()
    folder = svc.config.mailbox.folder
    known = svc.store.sync_token(folder)
    if known is not None and known != token:
        log.warning("folder %s changed identity (%s -> %s); resyncing", folder, known, token)
    refs = svc.mailbox.list_messages()
    svc.store.save_sync_state(folder, token, refs[-1].key if refs else None)
    return token, refs


@dataclass(frozen=True)
class Fetched:
    """One message from the folder: its bytes, or what the store knew of it already."""

    ref: MessageRef
    raw: bytes = b""
    complete: bool = True
    known: StoredMessage | None = None  # decided before a crash or a failed move

    @property
    def weight(self) -> int:
        return len(self.raw)


def fetch(svc: Services, token: str, refs: list[MessageRef]) -> Iterator[Fetched]:
    """Each message's bytes, in folder order; large ones without their attachments."""
    limit = svc.config.mailbox.max_message_bytes
    partial_limit = svc.config.mailbox.partial_fetch_bytes
    wanted: list[MessageRef] = []
    stored = svc.store.messages_at(token, [ref.key for ref in refs])
    for ref in refs:
        known = stored.get(ref.key)
        if known is not None and known.state != "stored":
            yield Fetched(ref, known=known)
        elif ref.size > limit:
            # Never downloaded whole: the header is enough to tell staff who sent it.
            yield Fetched(ref, svc.mailbox.fetch_header(ref), complete=False)
        elif ref.size > partial_limit and isinstance(svc.mailbox, ReadsTextParts):
            # Attachments are no part of a request: read the text, leave the rest.
            yield Fetched(ref, svc.mailbox.fetch_text_parts(ref), complete=False)
        else:
            wanted.append(ref)
    for ref, raw in svc.mailbox.fetch(wanted):
        yield Fetched(ref, raw)


def chunked(items: Iterable[Fetched], most: int, most_bytes: int) -> Iterator[list[Fetched]]:
    """Runs of at most `most` messages and (past the first) at most `most_bytes` bytes."""
    chunk: list[Fetched] = []
    weight = 0
    for item in items:
        if chunk and (len(chunk) >= most or weight + item.weight > most_bytes):
            yield chunk
            chunk, weight = [], 0
        chunk.append(item)
        weight += item.weight
    if chunk:
        yield chunk


def file_messages(
    svc: Services, to_file: dict[str, list[tuple[MessageRef, str]]], report: CycleReport
) -> None:
    """Move decided messages out of the inbox; only now is the mailbox changed."""
    for destination, pairs in to_file.items():
        if pairs:
            svc.mailbox.move([ref for ref, _ in pairs], destination)  # type: ignore[arg-type]
            svc.store.mark_filed([message_id for _, message_id in pairs])
            report.filed += len(pairs)
