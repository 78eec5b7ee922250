"""Steps 3 to 7 of a cycle for one fetch chunk: store, understand, decide, enqueue.

Reading and understanding are pure CPU and happen outside any transaction; only the
writes hold SQLite's write lock, which the reply sender needs too (sender.py), so it
is held for milliseconds, never for the length of an understanding.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from processor import faults
from processor.classify import classify
from processor.decide import decide
from processor.models import (
    Classification,
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
from processor.ports import MessageRef
from processor.reading import read_message
from processor.records import NewOutboxItem, StoredMessage
from processor.store import BatchUndone
from processor.timelimit import time_limit
from processor.understand import merge_requests, understand

if TYPE_CHECKING:
    from processor.pipeline import Fetched
    from processor.services import CycleReport, Services

log = logging.getLogger(__name__)

# A message the worker died under this many times, each time handled on its own, is a
# poison message: referred without another try.
MAX_FAILED_STARTS = 3
# Decisions per transaction: few commits, and the write lock held only briefly.
DECIDE_BATCH = 25


@dataclass(frozen=True)
class Understood:
    """Steps 4 and 5 for one message, or why a person must read it instead."""

    stored: StoredMessage
    email: InboundEmail
    classification: Classification | None = None
    request: Request | None = None
    referral: tuple[str, str] | None = None  # (reason, rule)
    error: str | None = None


def handle_chunk(
    svc: Services,
    token: str,
    chunk: list[Fetched],
    report: CycleReport,
    committed: Callable[[], None],
) -> list[tuple[MessageRef, str, str | None]]:
    """Steps 3 to 7 for one fetch chunk: (ref, Message-ID, where to file it) for each.

    The chunk's raw bytes are stored in one transaction and its decisions committed in
    a few more (DECIDE_BATCH each); after each, `committed()` tells the reply sender and
    the Teams thread what became due. Nothing leaves the process before its decision
    is committed, so a crash loses no side effect: the messages are still in the folder
    and are read again. A message already started once without a decision (the worker
    died under it) is retried on its own, counted and committed singly, so a poison
    message is found without taking its neighbours with it.
    """
    done: list[tuple[MessageRef, str, str | None]] = []
    first_tries: list[tuple[MessageRef, StoredMessage, InboundEmail]] = []
    retries: list[tuple[MessageRef, StoredMessage, InboundEmail]] = []
    copies: list[tuple[MessageRef, str]] = []  # a Message-ID twice in the chunk
    to_decide: set[str] = set()
    emails = [read_message(item.raw) if item.known is None else None for item in chunk]
    with svc.store.transaction():
        for item, email in zip(chunk, emails, strict=True):
            if email is None:
                assert item.known is not None
                done.append((item.ref, item.known.message_id, item.known.destination))
                continue
            stored = store_one(svc, token, item, email)
            if stored.message_id in to_decide:
                copies.append((item.ref, stored.message_id))
            elif stored.state != "stored":  # the same Message-ID was decided before
                done.append((item.ref, stored.message_id, stored.destination))
            elif stored.attempts == 0:
                first_tries.append((item.ref, stored, email))
                to_decide.add(stored.message_id)
            else:
                retries.append((item.ref, stored, email))
                to_decide.add(stored.message_id)
        svc.store.count_first_attempts([stored.message_id for _, stored, _ in first_tries])
    for start in range(0, len(first_tries), DECIDE_BATCH):
        if svc.stop.is_set():
            break
        batch = first_tries[start : start + DECIDE_BATCH]
        understood = [understand_one(svc, stored, email, 0) for _, stored, email in batch]
        destinations = decide_batch(svc, understood)
        done += [
            (ref, stored.message_id, where)
            for (ref, stored, _), where in zip(batch, destinations, strict=True)
        ]
        report.decided += len(destinations)
        committed()
    for ref, stored, email in retries:
        if svc.stop.is_set():
            break
        # Its starts: the chunk's (which died, perhaps not on it), then one per try alone.
        failed_alone = svc.store.count_attempt(stored.message_id) - 2
        one = understand_one(svc, stored, email, failed_alone)
        done.append((ref, stored.message_id, decide_and_enqueue(svc, one)))
        report.decided += 1
        committed()
    for ref, message_id in copies:  # filed with the first copy's decision
        decided = svc.store.message(message_id)
        done.append((ref, message_id, decided.destination if decided else None))
    return done


def decide_batch(svc: Services, batch: list[Understood]) -> list[str]:
    """Steps 6 and 7 for a batch, committed together: where each message goes.

    The batch is a `Store.batch()`, without a savepoint per decision. Should a
    decision's writes fail part-way, the batch is undone and done again with one
    savepoint each, so that only that message's writes are undone (and it is referred).
    """
    try:
        with svc.store.batch():
            return [decide_and_enqueue(svc, one) for one in batch]
    except BatchUndone:
        log.warning("a decision failed part-way; deciding its batch again, one by one")
    with svc.store.transaction():
        return [decide_and_enqueue(svc, one) for one in batch]


def store_one(svc: Services, token: str, item: Fetched, email: InboundEmail) -> StoredMessage:
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
    return stored


def understand_one(
    svc: Services, stored: StoredMessage, email: InboundEmail, failed_starts: int
) -> Understood:
    """Steps 4 and 5, within the time limit; no store access, so no transaction.

    `failed_starts` counts the earlier tries at this message alone that the worker died
    in; at MAX_FAILED_STARTS it is not tried again."""
    if failed_starts >= MAX_FAILED_STARTS:
        reason = f"Handling this message failed {failed_starts} times; a person should read it."
        return Understood(stored, email, referral=(reason, "pipeline.poison"))
    limit = svc.config.mailbox.max_message_bytes
    if stored.size > limit:
        reason = (
            f"The message ({stored.size / 1_000_000:.1f} MB) is larger than the "
            f"{limit / 1_000_000:g} MB limit, so it was not downloaded; a person should "
            "read it in the Review folder."
        )
        return Understood(stored, email, referral=(reason, "pipeline.oversized"))
    config = svc.config
    try:
        with time_limit(config.worker.understand_timeout, "Understanding the message"):
            faults.point("understand", stored.message_id)
            classification = classify(email, config.committee.address)
            request = None
            if not classification.automated:
                request = understand(email, config.meetings, config.committee.timezone, svc.clock())
    except Exception as exc:  # one message must never stop the ones behind it
        reason, detail = _failure(stored, exc)
        return Understood(stored, email, referral=(reason, "pipeline.error"), error=detail)
    return Understood(stored, email, classification, request)


def decide_and_enqueue(svc: Services, understood: Understood) -> str:
    """Steps 6 and 7 for one message, inside the caller's transaction.

    Any failure refers it to staff. Returns where the message is to be filed:
    "processed" or "review"."""
    email = understood.email
    if understood.referral is not None:
        return refer(svc, email, *understood.referral, error=understood.error)
    assert understood.classification is not None  # set whenever there is no referral
    try:
        request = understood.request
        original = thread_original(svc, email) if request is not None else None
        if request is not None and original is not None:
            request = merge_requests(original, request)
        situation = Situation(
            now=svc.clock(),
            meetings=svc.config.meetings,
            registrations=svc.store.registrations_for(email.sender),
            occupancy=svc.store.occupancy(),
        )
        decision = decide(email, understood.classification, request, situation)
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
        reason, detail = _failure(understood.stored, exc)
        return refer(svc, email, reason, "pipeline.error", error=detail)
    faults.point("after_decision")
    return record.destination


def _failure(stored: StoredMessage, exc: Exception) -> tuple[str, str]:
    """Log the failure; the reason staff read and the error's one-line detail."""
    log.exception("could not handle %s", stored.message_id)
    detail = "".join(traceback.format_exception_only(exc)).strip()
    return f"The message could not be handled automatically ({detail}).", detail


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
