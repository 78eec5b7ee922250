"""The whole path of one cycle, in order, on one screen.

    1. inventory  list what waits in the mailbox folder (sizes; UIDVALIDITY checked)
    2. fetch      BODY.PEEK[] by UID in chunks (large: text parts only; oversized: header)
    3. store      keep the raw bytes, deduplicated by Message-ID, before any side effect
                  (steps 3 to 7 run a fetch chunk at a time: two commits per chunk)
    4. classify   automated mail (RFC 3834) is ignored
    5. understand what the resident asked for, completing a reply to our clarification
    6. decide     the outcome, from the request and what the store knows
    7. enqueue    the decision, registration, reply and Teams change in one transaction
    8. remind     queue reminders due (once each) and the staff's daily digest (once a day)
    9. dispatch   send due replies, bring Teams attendees in step (see dispatch.py)
   10. file       move each decided message to Processed or Review

A failure in steps 3 to 7 is caught per message: the message is referred to staff with
the reason and the messages behind it go on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from processor import faults
from processor.classify import classify
from processor.config import Config
from processor.decide import decide
from processor.digest import enqueue_daily_digest
from processor.dispatch import dispatch
from processor.models import (
    Decision,
    InboundEmail,
    Request,
    Situation,
    request_from_json,
)
from processor.plan import (
    build_reply,
    calendar_items,
    decision_record,
    promotion_effects,
    reply_item,
)
from processor.ports import Calendar, Mailbox, MessageRef, ReadsTextParts, Transport
from processor.reading import read_message
from processor.records import NewOutboxItem, StoredMessage
from processor.reminders import enqueue_reminders
from processor.store import Store
from processor.timelimit import time_limit
from processor.understand import merge_requests, understand

log = logging.getLogger(__name__)

# A message whose handling was started this many times without a decision (the worker
# died under it) is a poison message: referred without another try.
MAX_MESSAGE_ATTEMPTS = 3

# A chunk holds at most this many bytes of mail (and `mailbox.fetch_chunk` messages).
CHUNK_BYTES = 8_000_000


@dataclass
class Services:
    """The outside systems and settings one cycle works with, passed explicitly."""

    config: Config
    store: Store
    mailbox: Mailbox
    transport: Transport
    calendar: Calendar | None
    clock: Callable[[], datetime]
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class CycleReport:
    seen: int = 0
    decided: int = 0
    filed: int = 0
    replies_sent: int = 0
    calendar_changes: int = 0
    reminders: int = 0
    errors: list[str] = field(default_factory=list)

    def log_summary(self, logger: logging.Logger) -> None:
        logger.info(
            "cycle: %d seen, %d decided, %d replies sent, %d Teams changes, %d filed",
            self.seen,
            self.decided,
            self.replies_sent,
            self.calendar_changes,
            self.filed,
        )
        for error in self.errors:
            logger.warning("%s", error)


def run_cycle(svc: Services) -> CycleReport:
    """One full cycle over every message now in the folder, then dispatch and filing."""
    report = CycleReport()
    svc.store.acquire_lock()
    try:
        token, refs = take_inventory(svc)
        report.seen = len(refs)
        to_file: dict[str, list[tuple[MessageRef, str]]] = {"processed": [], "review": []}
        mb = svc.config.mailbox
        for chunk in chunked(fetch(svc, token, refs), mb.fetch_chunk, CHUNK_BYTES):
            if svc.stop.is_set():
                break
            for ref, message_id, destination in handle_chunk(svc, token, chunk, report):
                if destination in to_file:
                    to_file[destination].append((ref, message_id))
        if not svc.stop.is_set():
            report.reminders = enqueue_reminders(svc)
            enqueue_daily_digest(svc)
            dispatch(svc, report)
        faults.point("before_move")
        file_messages(svc, to_file, report)
    finally:
        svc.store.release_lock()
    return report


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
    for ref in refs:
        known = svc.store.message_at(token, ref.key)
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


def handle_chunk(
    svc: Services, token: str, chunk: list[Fetched], report: CycleReport
) -> list[tuple[MessageRef, str, str | None]]:
    """Steps 3 to 7 for one fetch chunk: (ref, Message-ID, where to file it) for each.

    The chunk's raw bytes are stored in one transaction and its decisions made in
    another, so a hundred messages cost two commits. Nothing leaves the process until
    dispatch, so a crash before a commit loses no side effect: the messages are still in
    the folder and are read again. A message already started once without a decision
    (the worker died under it) is retried on its own, counted and committed singly, so
    a poison message is found without taking its neighbours with it.
    """
    done: list[tuple[MessageRef, str, str | None]] = []
    first_tries: list[tuple[MessageRef, StoredMessage, InboundEmail]] = []
    retries: list[tuple[MessageRef, StoredMessage, InboundEmail]] = []
    copies: list[tuple[MessageRef, str]] = []  # a Message-ID twice in the chunk
    to_decide: set[str] = set()
    with svc.store.transaction():
        for item in chunk:
            if item.known is not None:
                done.append((item.ref, item.known.message_id, item.known.destination))
                continue
            stored, email = store_one(svc, token, item)
            if stored.message_id in to_decide:
                copies.append((item.ref, stored.message_id))
            elif stored.state != "stored":  # the same Message-ID was decided before
                done.append((item.ref, stored.message_id, stored.destination))
            elif stored.attempts == 0:
                svc.store.count_attempt(stored.message_id)
                first_tries.append((item.ref, stored, email))
                to_decide.add(stored.message_id)
            else:
                retries.append((item.ref, stored, email))
                to_decide.add(stored.message_id)
    with svc.store.transaction():
        for ref, stored, email in first_tries:
            if svc.stop.is_set():
                break
            done.append((ref, stored.message_id, decide_and_enqueue(svc, stored, email, 1)))
            report.decided += 1
    for ref, stored, email in retries:
        if svc.stop.is_set():
            break
        attempts = svc.store.count_attempt(stored.message_id)
        done.append((ref, stored.message_id, decide_and_enqueue(svc, stored, email, attempts)))
        report.decided += 1
    for ref, message_id in copies:  # filed with the first copy's decision
        decided = svc.store.message(message_id)
        done.append((ref, message_id, decided.destination if decided else None))
    return done


def store_one(svc: Services, token: str, item: Fetched) -> tuple[StoredMessage, InboundEmail]:
    email = read_message(item.raw)
    stored = svc.store.store_raw(
        message_id=email.message_id,
        sha256=email.sha256,
        received_at=email.date or svc.clock(),
        raw=item.raw,
        raw_complete=item.complete,
        size=item.ref.size,
        mailbox_key=item.ref.key,
        sync_token=token,
        sender=email.sender,
        name=email.display_name,
        subject=email.subject,
    )
    faults.point("after_store_raw")
    return stored, email


def decide_and_enqueue(
    svc: Services, stored: StoredMessage, email: InboundEmail, attempts: int
) -> str:
    """Steps 4 to 7 for one stored message; any failure refers it to staff.

    `attempts` counts the times handling it was started, this one included. Returns
    where the message is to be filed: "processed" or "review"."""
    message_id = stored.message_id
    if attempts > MAX_MESSAGE_ATTEMPTS:
        return refer(
            svc,
            email,
            f"Handling this message failed {attempts - 1} times; a person should read it.",
            "pipeline.poison",
        )
    if stored.size > svc.config.mailbox.max_message_bytes:
        limit_mb = svc.config.mailbox.max_message_bytes / 1_000_000
        size_mb = stored.size / 1_000_000
        return refer(
            svc,
            email,
            f"The message ({size_mb:.1f} MB) is larger than the {limit_mb:g} MB "
            "limit, so it was not downloaded; a person should read it in the Review folder.",
            "pipeline.oversized",
        )
    try:
        with time_limit(svc.config.worker.understand_timeout, "Understanding the message"):
            faults.point("understand", message_id)
            request, decision = understand_and_decide(svc, email)
        outbox = plan_effects(svc, email, request, decision)
        promoted, promotion_items = promotion_effects(
            svc.config,
            svc.store,
            email,
            request,
            decision,
            svc.clock(),
            with_calendar=svc.calendar is not None,
        )
        record = decision_record(
            email, request, decision, outbox + promotion_items, promotions=promoted
        )
        svc.store.commit_decision(record)
    except Exception as exc:  # one message must never stop the ones behind it
        log.exception("could not handle %s", message_id)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return refer(
            svc,
            email,
            f"The message could not be handled automatically ({detail}).",
            "pipeline.error",
            error=detail,
        )
    faults.point("after_decision")
    return record.destination


def understand_and_decide(svc: Services, email: InboundEmail) -> tuple[Request | None, Decision]:
    """Steps 4 to 6: classify, understand (completing a thread), decide."""
    config = svc.config
    now = svc.clock()
    classification = classify(email, config.committee.address)
    request: Request | None = None
    if not classification.automated:
        request = understand(email, config.meetings, config.committee.timezone, now)
        original = thread_original(svc, email)
        if original is not None:
            request = merge_requests(original, request)
    situation = Situation(
        now=now,
        meetings=config.meetings,
        registrations=svc.store.registrations_for(email.sender),
        occupancy=svc.store.occupancy(),
    )
    return request, decide(email, classification, request, situation)


def thread_original(svc: Services, email: InboundEmail) -> Request | None:
    """The request we asked a question about, when this message answers that question."""
    for reply_id in (email.in_reply_to, *reversed(email.references)):
        if not reply_id:
            continue
        original = svc.store.message_by_reply_id(reply_id)
        if original and original.outcome == "clarification_requested" and original.request:
            return request_from_json(original.request)
    return None


def plan_effects(
    svc: Services, email: InboundEmail, request: Request | None, decision: Decision
) -> list[NewOutboxItem]:
    """The outbox rows: the reply (within the sender's budget) and any Teams change."""
    items = calendar_items(email, request, decision) if svc.calendar is not None else []
    event = svc.store.event(decision.meeting_id) if decision.meeting_id else None
    reply = build_reply(
        svc.config, email, request, decision, svc.clock(), event[0].join_url if event else None
    )
    if reply is not None:
        budget = svc.config.committee.replies_per_sender_per_day
        # The loop guard counts in real time, like the store's own timestamps.
        sent = svc.store.replies_since(email.reply_to, datetime.now(UTC) - timedelta(days=1))
        if sent < budget:
            items.append(reply_item(reply, email.reply_to))
        else:
            log.warning(
                "reply budget reached for %s; no reply to %s", email.reply_to, email.message_id
            )
    return items


def refer(
    svc: Services, email: InboundEmail, reason: str, rule: str, *, error: str | None = None
) -> str:
    """Record a message as referred to staff, without a reply; it goes to Review."""
    record = decision_record(email, None, Decision("referred", reason, rule), [], error=error)
    svc.store.commit_decision(record)
    return record.destination


def file_messages(
    svc: Services, to_file: dict[str, list[tuple[MessageRef, str]]], report: CycleReport
) -> None:
    """Move decided messages out of the inbox; only now is the mailbox changed."""
    for destination, pairs in to_file.items():
        if pairs:
            svc.mailbox.move([ref for ref, _ in pairs], destination)  # type: ignore[arg-type]
            svc.store.mark_filed([message_id for _, message_id in pairs])
            report.filed += len(pairs)
