"""Staff actions on the log: confirm, reject, resend, retry; each audited, then sent now.

An action is one store transaction (the verdict, any registration, the outbox rows
and the audit line); sending goes through the same outbox and `dispatch` as the
worker, so a reply a member of staff asked for is retried, deduplicated and logged
exactly like any other.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from processor import staffstore
from processor.compose import (
    MAX_NAME,
    MAX_SUBJECT,
    ComposedReply,
    format_when,
    make_environment,
    one_line,
    reply_message_id,
    reply_subject,
    threaded_reply,
)
from processor.config import Config
from processor.dispatch import dispatch
from processor.errors import LockHeldError, PermanentError
from processor.models import Decision, InboundEmail, Meeting, Mode, Request, request_from_json
from processor.plan import build_reply, calendar_items, decision_record, reply_item
from processor.reading import read_message
from processor.records import NewOutboxItem
from processor.services import CycleReport, Services
from processor.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionResult:
    """What an action did, in words for the member of staff who asked for it."""

    message_id: str
    summary: str
    queued: int  # outbox rows added


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "staff"


def load_email(store: Store, ref: str) -> tuple[dict[str, Any], InboundEmail]:
    """The stored row and the decoded mail for a `review list` id or a Message-ID."""
    row = staffstore.find_message(store, ref)
    if row is None:
        raise PermanentError(f"no message {ref!r} in the log (see `review list`)")
    if row["raw"] is None:
        raise PermanentError(f"message {row['id']} has no stored mail (purged?)")
    return row, read_message(bytes(row["raw"]))


def choose_meeting(
    config: Config, row: dict[str, Any], wanted: str | None, now: datetime
) -> Meeting:
    """--meeting, else the message's meeting, else the only meeting not yet over."""
    if wanted is not None:
        meeting = config.meeting(wanted)
        if meeting is None:
            known = ", ".join(m.id for m in config.meetings) or "none configured"
            raise PermanentError(f"unknown meeting {wanted!r} (known: {known})")
        return meeting
    if (meeting := config.meeting(row["meeting_id"])) is not None:
        return meeting
    upcoming = [m for m in config.meetings if m.end > now]
    if len(upcoming) == 1:
        return upcoming[0]
    names = ", ".join(m.id for m in upcoming) or "none upcoming"
    raise PermanentError(f"say which meeting with --meeting ({names})")


def confirm(
    svc: Services, ref: str, *, mode: Mode, party: int | None, meeting_id: str | None, actor: str
) -> ActionResult:
    """Give the resident a place, as the worker would have: registration, reply, Teams."""
    config, store, now = svc.config, svc.store, svc.clock()
    row, email = load_email(store, ref)
    meeting = choose_meeting(config, row, meeting_id, now)
    if party is not None and party < 1:
        raise PermanentError("--party must be at least 1")
    base = request_from_json(row["request"]) if row["request"] else Request(intent="attend")
    size = (party or base.party_size or 1) if mode == "in_person" else 1
    request = replace(
        base,
        intent="attend",
        mode=mode,
        meeting_id=meeting.id,
        party_size=size,
        name=base.name or email.display_name,
    )
    previous = next((r for r in store.registrations(meeting.id) if r.sender == email.sender), None)
    was_online = (
        previous is not None and previous.status == "confirmed" and previous.mode == "online"
    )
    decision = Decision(
        outcome="confirmed",
        reason=f"Confirmed {mode.replace('_', ' ')} by {actor} after review.",
        rule="staff.confirm",
        meeting_id=meeting.id,
        mode=mode,
        party_size=size,
        reply_kind="confirmed_in_person" if mode == "in_person" else "confirmed_online",
        calendar_add=mode == "online",
        calendar_remove=mode == "in_person" and was_online,
    )
    warn_if_full(store, meeting, mode, size, previous is not None)
    outbox = calendar_items(email, request, decision) if config.graph.enabled else []
    event = store.event(meeting.id)
    reply = build_reply(config, email, request, decision, now, event[0].join_url if event else None)
    if reply is not None:
        outbox.append(reply_item(reply, email.reply_to))
    record = decision_record(email, request, decision, outbox)
    queued = staffstore.commit_staff_decision(
        store,
        record,
        actor=actor,
        action="review.confirm",
        detail=f"confirmed {mode} at {meeting.id}, party {size}",
    )
    return ActionResult(email.message_id, f"confirmed {mode} at {meeting.id}", queued)


def warn_if_full(store: Store, meeting: Meeting, mode: Mode, size: int, holds: bool) -> None:
    """Staff may overrule capacity; say so rather than refuse (the clerk knows the room)."""
    taken = store.occupancy().get(meeting.id)
    if taken is None or holds:
        return
    if mode == "in_person" and taken.in_person + size > meeting.in_person_capacity:
        log.warning(
            "%s: in-person places exceed capacity (%d + %d > %d)",
            meeting.id,
            taken.in_person,
            size,
            meeting.in_person_capacity,
        )
    if mode == "online" and taken.online + 1 > meeting.online_capacity:
        log.warning("%s: online places exceed capacity", meeting.id)


def reject(svc: Services, ref: str, *, reason: str, actor: str) -> ActionResult:
    """Decline a referred request with the staff's reason, in a reply to the resident."""
    reason = reason.strip()
    if not reason:
        raise PermanentError("--reason must say why, in words the resident will read")
    row, email = load_email(svc.store, ref)
    message = compose_rejection(svc.config, email, row, reason, svc.clock())
    item = reply_item(message, email.reply_to)
    queued = staffstore.note_staff_reason(
        svc.store,
        email.message_id,
        rule="staff.reject",
        reason=f"Rejected by {actor}: {reason}",
        actor=actor,
        action="review.reject",
        outbox=(item,),
    )
    return ActionResult(email.message_id, "rejected", queued)


def compose_rejection(
    config: Config, email: InboundEmail, row: dict[str, Any], reason: str, now: datetime
) -> ComposedReply:
    """The `rejected` reply: written like the worker's replies (compose.threaded_reply)."""
    if not email.reply_to:
        raise PermanentError("the message has no address to reply to")
    committee = config.committee
    meeting = config.meeting(row["meeting_id"])
    name = one_line(row["name"] or email.display_name or "", MAX_NAME) or None
    context = {
        "committee": {
            "name": committee.name,
            "address": committee.address,
            "contact": committee.contact,
            "contact_is_address": "@" in committee.contact and " " not in committee.contact.strip(),
        },
        "name": name,
        "reason": reason,
        "meeting": None
        if meeting is None
        else {
            "title": meeting.title,
            "when": format_when(meeting.start, meeting.end, committee.timezone),
        },
    }
    env = make_environment()
    subject = one_line(env.get_template("rejected.subject.txt.j2").render(context), MAX_SUBJECT)
    return threaded_reply(
        committee=committee,
        email=email,
        # The reason is part of the identity: the same verdict twice is one email.
        message_id=reply_message_id(email.message_id, f"rejected\0{reason}", committee.domain),
        subject=reply_subject(email.subject, subject),
        name=name,
        text=env.get_template("rejected.txt.j2").render(context).strip() + "\n",
        html=env.get_template("rejected.html.j2").render(context).strip() + "\n",
        now=now,
    )


def resend(svc: Services, ref: str, *, actor: str) -> ActionResult:
    """The last reply again, under a new Message-ID (a mail client may drop a duplicate)."""
    row, email = load_email(svc.store, ref)
    last = staffstore.last_reply(svc.store, email.message_id)
    if last is None:
        raise PermanentError(f"message {row['id']} has had no reply to resend")
    number = staffstore.reply_count(svc.store, email.message_id)
    old_id = last["idempotency_key"].removeprefix("reply:")
    digest = hashlib.sha256(f"{old_id}\0resend\0{number}".encode()).hexdigest()[:32]
    new_id = f"<{digest}.resend{number}.reply@{svc.config.committee.domain}>"
    message = message_from_bytes(bytes(last["payload"]), policy=policy.SMTP)
    assert isinstance(message, EmailMessage)
    del message["Message-ID"], message["Date"]
    message["Message-ID"] = new_id
    message["Date"] = svc.clock()
    # Keyed by its own Message-ID, like every reply, so a crash check and a resident's
    # answer to the resent copy both find it; the number makes each resend distinct.
    item = NewOutboxItem(
        idempotency_key=f"reply:{new_id}",
        kind="reply",
        recipient=last["recipient"],
        meeting_id=None,
        payload=message.as_bytes(),
    )
    queued = staffstore.enqueue(
        svc.store,
        email.message_id,
        item,
        actor=actor,
        action="review.resend",
        detail=f"resend {number} of {old_id} as {new_id}",
    )
    return ActionResult(email.message_id, f"reply resent as {new_id}", queued)


def retry(svc: Services, ref: str, *, actor: str) -> ActionResult:
    """Failed replies and Teams changes of a message: due again, with fresh attempts."""
    row = staffstore.find_message(svc.store, ref)
    if row is None:
        raise PermanentError(f"no message {ref!r} in the log (see `review list`)")
    count = staffstore.retry_failed(svc.store, row["message_id"], actor=actor, now=svc.clock())
    if not count:
        raise PermanentError(f"message {row['id']} has nothing failed to retry")
    return ActionResult(row["message_id"], f"{count} failed item(s) queued again", count)


def dispatch_now(svc: Services) -> CycleReport | None:
    """Send what is due under the worker lock; None when a worker holds it (it will)."""
    try:
        svc.store.lock.acquire()
    except LockHeldError as exc:
        log.info("%s; the worker sends it on its next cycle", exc)
        return None
    report = CycleReport()
    try:
        dispatch(svc, report)
    finally:
        svc.store.lock.release()
    return report
