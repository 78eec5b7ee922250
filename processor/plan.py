"""Turn a decision into store changes: the registration, the reply and the Teams change.

Everything here is computed before the transaction that records it, so the decision,
the registration and the outbox rows commit together (see `Store.commit_decision`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage

from processor import waitlist
from processor.compose import ComposedReply, compose_reply, reply_message_id
from processor.config import Config
from processor.models import (
    Decision,
    InboundEmail,
    Registration,
    RegistrationStatus,
    Request,
    request_to_json,
)
from processor.reading import read_message
from processor.records import DecisionRecord, NewOutboxItem
from processor.store import Store

_STATUS: dict[str, RegistrationStatus] = {
    "confirmed": "confirmed",
    "waitlisted": "waitlisted",
    "changed": "confirmed",
    "cancelled": "cancelled",
}


def registration_change(
    email: InboundEmail, request: Request | None, decision: Decision
) -> Registration | None:
    """The registration row this decision writes, or None when it changes none."""
    status = _STATUS.get(decision.outcome)
    if status is None or decision.meeting_id is None:
        return None
    if decision.outcome == "cancelled":
        # Cancelling keeps the row's mode and size for the record; only the status changes.
        mode = decision.mode or "online"
    else:
        if decision.mode is None:
            return None
        mode = decision.mode
    return Registration(
        meeting_id=decision.meeting_id,
        message_id=email.message_id,
        sender=email.sender,
        name=request.name if request else None,
        mode=mode,
        party_size=decision.party_size or 1,
        status=status,
        access_needs=request.access_needs if request else (),
    )


def calendar_items(
    email: InboundEmail, request: Request | None, decision: Decision
) -> list[NewOutboxItem]:
    """Outbox rows that add or remove the resident from the meeting's Teams event."""
    items = []
    name = request.name if request else None
    payload = json.dumps({"address": email.sender, "name": name}).encode()
    for wanted, kind in (
        (decision.calendar_add, "attendee_add"),
        (decision.calendar_remove, "attendee_remove"),
    ):
        if wanted and decision.meeting_id:
            items.append(
                NewOutboxItem(
                    idempotency_key=f"{kind}:{decision.meeting_id}:{email.sender}:"
                    f"{email.message_id}",
                    kind=kind,
                    recipient=email.sender,
                    meeting_id=decision.meeting_id,
                    payload=payload,
                )
            )
    return items


def build_reply(
    config: Config,
    email: InboundEmail,
    request: Request | None,
    decision: Decision,
    now: datetime,
    join_url: str | None,
    resident_name: str | None = None,
) -> ComposedReply | None:
    if decision.reply_kind is None or not email.reply_to:
        return None
    meeting = config.meeting(decision.meeting_id)
    open_meetings = [config.meeting(mid) for mid in decision.open_meeting_ids]
    return compose_reply(
        decision.reply_kind,
        email=email,
        decision=decision,
        meeting=meeting,
        open_meetings=[m for m in open_meetings if m is not None],
        committee=config.committee,
        message_id=reply_message_id(email.message_id, decision.reply_kind, config.committee.domain),
        now=now,
        join_url=join_url,
        resident_name=request.name if request else resident_name,
    )


def reply_item(reply: ComposedReply | EmailMessage, recipient: str) -> NewOutboxItem:
    """The outbox row sending `reply`, keyed by its Message-ID."""
    if isinstance(reply, ComposedReply):
        message_id, payload = reply.message_id, reply.payload
    else:
        message_id, payload = str(reply["Message-ID"]), reply.as_bytes()
    return NewOutboxItem(
        idempotency_key=f"reply:{message_id}",
        kind="reply",
        recipient=recipient,
        meeting_id=None,
        payload=payload,
    )


def _intent_without_request(decision: Decision) -> str:
    return "automated" if decision.outcome == "ignored" else "other"


def decision_record(
    email: InboundEmail,
    request: Request | None,
    decision: Decision,
    outbox: list[NewOutboxItem],
    error: str | None = None,
    promotions: tuple[Registration, ...] = (),
) -> DecisionRecord:
    evidence = [vars(e) for e in request.evidence] if request else []  # flat: no deep copy
    return DecisionRecord(
        message_id=email.message_id,
        intent=request.intent if request else _intent_without_request(decision),
        mode=decision.mode or (request.mode if request else None),
        meeting_id=decision.meeting_id,
        party_size=decision.party_size if decision.mode == "in_person" else None,
        name=request.name if request else None,
        access_needs=request.access_needs if request else (),
        outcome=decision.outcome,
        reason=decision.reason,
        rule=decision.rule,
        evidence_json=json.dumps(evidence),
        request_json=request_to_json(request) if request else None,
        destination="review" if decision.outcome == "referred" else "processed",
        registration=registration_change(email, request, decision),
        outbox=tuple(outbox),
        error=error,
        promotions=promotions,
    )


def promotion_effects(
    config: Config,
    store: Store,
    email: InboundEmail,
    request: Request | None,
    decision: Decision,
    now: datetime,
    with_calendar: bool,
) -> tuple[tuple[Registration, ...], list[NewOutboxItem]]:
    """Who a cancellation or change lets off the waiting list, and their replies."""
    meeting = config.meeting(decision.meeting_id)
    if meeting is None or decision.outcome not in ("cancelled", "changed"):
        return (), []
    after = waitlist.apply(
        store.registrations(meeting.id), registration_change(email, request, decision)
    )
    promoted = tuple(waitlist.promotions(meeting, after))
    items: list[NewOutboxItem] = []
    for registration in promoted:
        stored = store.message(registration.message_id)
        if stored is None or stored.raw is None:
            continue  # purged: the place is theirs, staff see it in the audit trail
        original = read_message(stored.raw)
        promoted_decision = Decision(
            outcome="confirmed",
            reason="A place came free and was given to the next on the waiting list.",
            rule="waitlist.promoted",
            meeting_id=meeting.id,
            mode=registration.mode,
            party_size=registration.party_size,
            reply_kind="promoted",
            calendar_add=registration.mode == "online",
        )
        event = store.event(meeting.id)
        reply = build_reply(
            config,
            original,
            None,
            promoted_decision,
            now,
            event[0].join_url if event else None,
            registration.name,
        )
        if reply is not None:
            items.append(
                replace(reply_item(reply, original.reply_to), message_id=original.message_id)
            )
        if with_calendar:
            items += [
                replace(i, message_id=original.message_id)
                for i in calendar_items(original, None, promoted_decision)
            ]
    return promoted, items
