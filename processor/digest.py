"""The daily digest for staff: the last day's outcomes, what waits for review, what failed."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any

from processor import staffstore
from processor.compose import LOOP_HEADER, MAX_SUBJECT, make_environment, one_line
from processor.config import Config
from processor.errors import PermanentError
from processor.models import OUTCOMES
from processor.records import NewOutboxItem
from processor.store import Store

if TYPE_CHECKING:
    from processor.services import Services

PERIOD = timedelta(hours=24)


def digest_context(store: Store, config: Config, now: datetime) -> dict[str, Any]:
    counts = staffstore.outcome_counts_since(store, now - PERIOD)
    tz = config.committee.timezone
    return {
        "committee": config.committee.name,
        "since": (now - PERIOD).astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "until": now.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"),
        "counts": [(o.replace("_", " "), counts.get(o, 0)) for o in OUTCOMES],
        "total": sum(counts.values()),
        "review": staffstore.review_queue(store),
        "failed": staffstore.failed_outbox(store),
    }


def build_digest(
    store: Store, config: Config, to: str, now: datetime, message_id: str | None = None
) -> EmailMessage:
    """The digest email, from the committee address, marked as generated (no auto-replies)."""
    context = digest_context(store, config, now)
    env = make_environment()
    message = EmailMessage(policy=SMTP)
    committee = config.committee
    try:
        message["From"] = Address(display_name=committee.name, addr_spec=committee.address)
        message["To"] = Address(addr_spec=to.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise PermanentError(f"cannot send the digest to {to!r}: {exc}") from exc
    subject = env.get_template("digest.subject.txt.j2").render(context)
    message["Subject"] = one_line(subject, MAX_SUBJECT)
    message["Date"] = now
    message["Message-ID"] = message_id or make_msgid("digest", domain=committee.domain)
    # RFC 3834 section 5: generated, not a reply; our loop header makes the worker ignore
    # it should it land in the committee mailbox.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = "1"
    message.set_content(env.get_template("digest.txt.j2").render(context).strip() + "\n")
    message.add_alternative(
        env.get_template("digest.html.j2").render(context).strip() + "\n", subtype="html"
    )
    return message


def send_digest(config: Config, message: EmailMessage) -> None:
    """Through the configured transport, on its own connection."""
    from processor.services import build_transport, outlook_tokens

    transport = build_transport(config, outlook_tokens(config))
    with transport.connect() as connection:
        connection.send(message)


def enqueue_daily_digest(svc: Services) -> bool:
    """Queue today's digest once worker.digest_time has passed; once a day, crash or not.

    Its Message-ID is the date's, so the outbox key makes it happen once a day and a
    send interrupted by a crash is settled like any reply.
    """
    at = svc.config.worker.digest_time
    if at is None:
        return False
    tz = svc.config.committee.timezone
    now = svc.clock()
    local = now.astimezone(tz)
    if local.time() < at:
        return False
    to = svc.config.worker.digest_to or svc.config.committee.contact
    message_id = f"<digest-{local.date().isoformat()}@{svc.config.committee.domain}>"
    message = build_digest(svc.store, svc.config, to, now, message_id=message_id)
    item = NewOutboxItem(
        idempotency_key=f"reply:{message_id}",
        kind="reply",
        recipient=to.strip().lower(),
        meeting_id=None,
        payload=message.as_bytes(),
    )
    return svc.store.enqueue(item, message_id)
