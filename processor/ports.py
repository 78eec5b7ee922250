"""The small protocols each outside system sits behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol, runtime_checkable

from processor.models import Meeting

Destination = Literal["processed", "review"]


@dataclass(frozen=True)
class MessageRef:
    """One message in the mailbox: its key there (IMAP UID or maildir key) and size."""

    key: str
    size: int


class Mailbox(Protocol):
    """The committee inbox: list what waits, fetch it without marking it, file it."""

    def sync_token(self) -> str:
        """An id of the folder's identity (IMAP UIDVALIDITY); keys are valid only under it."""
        ...

    def list_messages(self) -> list[MessageRef]:
        """Every message now in the source folder, oldest first, with its size."""
        ...

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        """The raw bytes of each message (IMAP BODY.PEEK[], chunked), never setting \\Seen."""
        ...

    def fetch_header(self, ref: MessageRef) -> bytes:
        """Only the header block: for messages too large to download."""
        ...

    def move(self, refs: Sequence[MessageRef], destination: Destination) -> None:
        """File messages in the processed or review folder (created when missing)."""
        ...

    def append_sent(self, *raws: bytes) -> None:
        """Keep copies of replies in the Sent folder (for transports that file none)."""
        ...

    def find_in_sent(self, message_id: str) -> bool:
        """Whether the Sent folder holds a message with exactly this Message-ID."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ReadsTextParts(Protocol):
    """A mailbox that can fetch a message without its attachments (IMAP BODYSTRUCTURE)."""

    def fetch_text_parts(self, ref: MessageRef) -> bytes: ...


class Connection(Protocol):
    """An open transport connection: one per cycle."""

    def send(self, message: EmailMessage) -> None:
        """Hand the message over; recipients are its To header."""
        ...

    def send_raw(
        self,
        raw: bytes,
        *,
        sender: str,
        recipient: str,
        message_id: str,
        before_content: Callable[[], None] | None = None,
    ) -> None:
        """Hand over a message already flattened (CRLF line ends), as it is, to one
        recipient from `sender` (the SMTP envelope); `message_id` names it in errors.

        `before_content` is called once, just before the server is handed what it could
        accept: after SMTP's envelope, before its DATA."""
        ...


class Transport(Protocol):
    """Sends replies: SMTP, Graph sendMail, or files in a folder."""

    def connect(self) -> AbstractContextManager[Connection]: ...


@runtime_checkable
class KeepsSentCopies(Protocol):
    """A transport that files its own record of what it sent (Graph's Sent Items, files).

    Plain SMTP files nothing, so after an SMTP send the worker APPENDs a copy to the
    mailbox's Sent folder; either record lets a crash-interrupted send be settled.
    """

    def find_sent(self, message_id: str) -> bool: ...


@dataclass(frozen=True)
class Attendee:
    address: str  # lower-case
    name: str | None = None


@dataclass(frozen=True)
class EventRef:
    """A Teams meeting event on the organiser's calendar."""

    event_id: str
    etag: str
    join_url: str | None


class Calendar(Protocol):
    """The organiser's calendar: one Teams event per meeting, attendees kept in step."""

    # True when requests are only written down (graph.dry_run): nobody is invited, so
    # the staff log must not say invite_sent.
    dry_run: bool

    def ensure_event(self, meeting: Meeting, known: EventRef | None) -> EventRef:
        """Create (deterministic transactionId), adopt or update the meeting's event."""
        ...

    def update_attendees(
        self, event: EventRef, add: Sequence[Attendee], remove: Sequence[str]
    ) -> EventRef:
        """One PATCH of `attendees` under If-Match; re-read and retry on 412."""
        ...
