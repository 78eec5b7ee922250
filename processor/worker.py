"""The worker: build the adapters from config, run one cycle or run on a schedule."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from processor.config import Config
from processor.errors import LockHeldError, ProcessorError
from processor.pipeline import CycleReport, Services, run_cycle
from processor.ports import Calendar, Mailbox, Transport
from processor.store import Store

log = logging.getLogger(__name__)


def build_mailbox(config: Config, tokens: Callable[[], str] | None) -> Mailbox:
    if config.mailbox.kind == "maildir":
        from processor.maildir import MaildirMailbox

        return MaildirMailbox(config.mailbox)
    from processor.imap import ImapMailbox

    return ImapMailbox(config.mailbox, token_provider=tokens)


def build_transport(config: Config, tokens: Callable[[], str] | None) -> Transport:
    if config.smtp.kind == "file":
        from processor.transport import FileTransport

        assert config.smtp.path is not None
        return FileTransport(config.smtp.path)
    if config.smtp.kind == "graph":
        from processor.graph_transport import GraphTransport

        return GraphTransport(config.graph, sender=config.committee.address)
    from processor.transport import SmtpTransport

    return SmtpTransport(config.smtp, token_provider=tokens)


def build_calendar(config: Config) -> Calendar | None:
    if not config.graph.enabled:
        return None
    if config.graph.dry_run:
        from processor.graph import DryRunCalendar

        return DryRunCalendar(config.graph)
    from processor.graph import GraphCalendar

    return GraphCalendar(config.graph)


def outlook_tokens(config: Config) -> Callable[[], str] | None:
    """XOAUTH2 tokens for IMAP/SMTP when either uses auth = oauth2."""
    if "oauth2" not in (config.mailbox.auth, config.smtp.auth):
        return None
    from processor.auth import OUTLOOK_SCOPE, TokenProvider

    provider = TokenProvider(config.graph)
    return lambda: provider.token(OUTLOOK_SCOPE)


def build_services(
    config: Config, clock: Callable[[], datetime] | None = None
) -> Services:
    tokens = outlook_tokens(config)
    return Services(
        config=config,
        store=Store(config.storage.path),
        mailbox=build_mailbox(config, tokens),
        transport=build_transport(config, tokens),
        calendar=build_calendar(config),
        clock=clock or (lambda: datetime.now(UTC)),
    )


def run_once(svc: Services) -> CycleReport:
    try:
        return run_cycle(svc)
    finally:
        svc.mailbox.close()


def run_forever(svc: Services) -> None:
    """An APScheduler interval job; SIGTERM/SIGINT stop it between messages."""
    scheduler = BlockingScheduler(timezone=UTC)

    def cycle() -> None:
        try:
            report = run_cycle(svc)
            log.info("cycle: %d seen, %d decided, %d replies, %d filed", report.seen,
                     report.decided, report.replies_sent, report.filed)
        except LockHeldError as exc:
            log.warning("skipping this cycle: %s", exc)
        except ProcessorError as exc:
            log.error("cycle failed: %s", exc)
            svc.mailbox.close()  # reconnect next time

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current message", signum)
        svc.stop.set()
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.add_job(
        cycle,
        "interval",
        seconds=svc.config.worker.poll_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    try:
        scheduler.start()
    finally:
        svc.mailbox.close()
        svc.store.close()
