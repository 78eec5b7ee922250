"""The daily digest for staff: the last day's outcomes, what waits for review, what failed."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Any

from processor import staffstore
from processor.compose import LOOP_HEADER, MAX_SUBJECT, make_environment, one_line
from processor.config import Config
from processor.errors import PermanentError
from processor.models import OUTCOMES
from processor.store import Store
from processor.worker import build_transport, outlook_tokens

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


def build_digest(store: Store, config: Config, to: str, now: datetime) -> EmailMessage:
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
    message["Message-ID"] = make_msgid("digest", domain=committee.domain)
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
    transport = build_transport(config, outlook_tokens(config))
    with transport.connect() as connection:
        connection.send(message)
