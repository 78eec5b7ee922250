"""Reminders: one email to each confirmed resident a set time before the meeting.

The reply's Message-ID is derived from the registration's request, so the outbox's
idempotency key makes each reminder happen once, across restarts and reruns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from processor.models import Decision
from processor.plan import build_reply, reply_item
from processor.reading import read_message

if TYPE_CHECKING:
    from processor.services import Services


def due_meetings(svc: Services, now: datetime) -> list[str]:
    lead = timedelta(hours=svc.config.worker.reminder_hours)
    if lead <= timedelta(0):
        return []
    return [m.id for m in svc.config.meetings if m.start - lead <= now < m.start]


def enqueue_reminders(svc: Services) -> int:
    """Queue the reminders now due; returns how many were new."""
    now = svc.clock()
    queued = 0
    for meeting_id in due_meetings(svc, now):
        event = svc.store.event(meeting_id)
        for registration in svc.store.registrations(meeting_id):
            if registration.status != "confirmed":
                continue
            stored = svc.store.message(registration.message_id)
            if stored is None or stored.raw is None:
                continue
            original = read_message(stored.raw)
            decision = Decision(
                outcome="confirmed",
                reason="Reminder before the meeting.",
                rule="reminder",
                meeting_id=meeting_id,
                mode=registration.mode,
                party_size=registration.party_size,
                reply_kind="reminder",
            )
            reply = build_reply(
                svc.config,
                original,
                None,
                decision,
                now,
                event[0].join_url if event else None,
                registration.name,
            )
            if reply is not None and svc.store.enqueue(
                reply_item(reply, original.reply_to), original.message_id
            ):
                queued += 1
    return queued
