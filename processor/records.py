"""The rows the store reads and writes, as frozen values: outbox items, decisions, messages."""

from __future__ import annotations

from dataclasses import dataclass

from processor.models import Registration


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idempotency_key: str
    kind: str  # "reply" | "attendee_add" | "attendee_remove"
    message_id: str
    recipient: str
    meeting_id: str | None
    payload: bytes
    state: str
    attempts: int


@dataclass(frozen=True)
class NewOutboxItem:
    idempotency_key: str
    kind: str  # "reply" | "attendee_add" | "attendee_remove"
    recipient: str
    meeting_id: str | None
    payload: bytes
    message_id: str | None = None  # the message it answers, when not the one decided


@dataclass(frozen=True)
class DecisionRecord:
    """Everything one decision changes in the store."""

    message_id: str
    intent: str | None
    mode: str | None
    meeting_id: str | None
    party_size: int | None
    name: str | None
    access_needs: tuple[str, ...]
    outcome: str
    reason: str
    rule: str
    evidence_json: str
    request_json: str | None
    destination: str  # "processed" | "review"
    registration: Registration | None
    outbox: tuple[NewOutboxItem, ...]
    error: str | None = None
    promotions: tuple[Registration, ...] = ()  # waiting-list places this decision frees


@dataclass(frozen=True)
class StoredMessage:
    id: int
    message_id: str
    raw: bytes | None
    raw_complete: bool
    size: int
    state: str
    attempts: int
    mailbox_key: str | None
    destination: str | None
    outcome: str | None
    request: str | None
