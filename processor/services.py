"""The outside systems and settings a cycle works with, and how config builds them.

Kept apart from the pipeline so that the reply process (reply_process.py), which only
sends, starts without importing the understanding, composing and deciding machinery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from processor.auth import TokenProvider
from processor.config import Config
from processor.ports import Calendar, Mailbox, Transport
from processor.store import Store


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
    # A second mailbox session and transport, for the thread that sends replies while
    # the cycle decides (sender.py); None sends them after deciding, in this thread.
    reopen: Callable[[], tuple[Mailbox, Transport]] | None = None


@dataclass
class CycleReport:
    seen: int = 0
    decided: int = 0
    filed: int = 0
    replies_sent: int = 0
    calendar_changes: int = 0
    reminders: int = 0
    errors: list[str] = field(default_factory=list)
    # Where the time went: deciding (replies going out alongside), then the Teams
    # updates and filing, and waiting for the last replies to go out (all "finishing").
    seconds_deciding: float = 0.0
    seconds_filing: float = 0.0
    seconds_finishing: float = 0.0

    def log_summary(self, logger: logging.Logger) -> None:
        logger.info(
            "cycle: %d seen, %d decided, %d replies sent, %d Teams changes, %d filed "
            "(%.2f s deciding, then %.2f s to finish: %.2f s filing and Teams)",
            self.seen,
            self.decided,
            self.replies_sent,
            self.calendar_changes,
            self.filed,
            self.seconds_deciding,
            self.seconds_finishing,
            self.seconds_filing,
        )
        for error in self.errors:
            logger.warning("%s", error)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    """`run --now`: the time the whole cycle (and its reply process) takes as now."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def build_mailbox(config: Config, tokens: Callable[[], str] | None) -> Mailbox:
    if config.mailbox.kind == "maildir":
        from processor.maildir import MaildirMailbox

        return MaildirMailbox(config.mailbox)
    from processor.imap import ImapMailbox

    return ImapMailbox(config.mailbox, token_provider=tokens)


def build_transport(
    config: Config, tokens: Callable[[], str] | None, provider: TokenProvider | None = None
) -> Transport:
    if config.smtp.kind == "file":
        from processor.transport import FileTransport

        assert config.smtp.path is not None
        return FileTransport(config.smtp.path)
    if config.smtp.kind == "graph":
        from processor.graph import GraphClient
        from processor.graph_transport import GraphTransport

        client = GraphClient(config.graph, provider or TokenProvider(config.graph))
        return GraphTransport(client, sender=config.committee.address)
    from processor.transport import SmtpTransport

    return SmtpTransport(config.smtp, token_provider=tokens)


def build_calendar(config: Config, provider: TokenProvider | None = None) -> Calendar | None:
    if not config.graph.enabled:
        return None
    from processor.graph import build_calendar as graph_calendar

    return graph_calendar(config, provider)


def outlook_tokens(
    config: Config, provider: TokenProvider | None = None
) -> Callable[[], str] | None:
    """XOAUTH2 tokens for IMAP/SMTP when either uses auth = oauth2."""
    if "oauth2" not in (config.mailbox.auth, config.smtp.auth):
        return None
    from processor.auth import OUTLOOK_SCOPE

    tokens = provider or TokenProvider(config.graph)
    return lambda: tokens.token(OUTLOOK_SCOPE)


def require_secrets(config: Config) -> None:
    """Read every secret this config will use now, so a missing one fails at start-up."""
    if config.mailbox.kind == "imap" and config.mailbox.auth == "password":
        config.mailbox.password.reveal()
    if config.smtp.kind == "smtp" and config.smtp.auth == "password" and config.smtp.username:
        config.smtp.password.reveal()
    uses_graph = (config.graph.enabled and not config.graph.dry_run) or config.smtp.kind == "graph"
    if (uses_graph or "oauth2" in (config.mailbox.auth, config.smtp.auth)) and (
        config.graph.certificate_file is None
    ):
        config.graph.client_secret.reveal()


def build_services(
    config: Config, clock: Callable[[], datetime] | None = None, *, calendar: bool = True
) -> Services:
    """Every adapter the config asks for, sharing one msal application per process;
    without the Teams calendar when `calendar` is False (the reply process)."""
    require_secrets(config)
    provider = TokenProvider(config.graph)  # builds its msal app lazily, on first use
    tokens = outlook_tokens(config, provider)

    def reopen() -> tuple[Mailbox, Transport]:
        """Fresh adapters for the reply thread (msal's token cache is thread-safe)."""
        return build_mailbox(config, tokens), build_transport(config, tokens, provider)

    return Services(
        config=config,
        store=Store(config.storage.path),
        mailbox=build_mailbox(config, tokens),
        transport=build_transport(config, tokens, provider),
        calendar=build_calendar(config, provider) if calendar else None,
        clock=clock or utc_now,
        reopen=reopen,
    )
