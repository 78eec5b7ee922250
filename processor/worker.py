"""The worker: build the adapters from config, run one cycle or run on a schedule."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from processor.auth import TokenProvider
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


def build_services(config: Config, clock: Callable[[], datetime] | None = None) -> Services:
    """Every adapter the config asks for, sharing one msal application per process."""
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
        calendar=build_calendar(config, provider),
        clock=clock or (lambda: datetime.now(UTC)),
        reopen=reopen,
    )


def run_once(svc: Services) -> CycleReport:
    try:
        return run_cycle(svc)
    finally:
        svc.mailbox.close()


def run_cycle_logged(svc: Services) -> None:
    """One cycle for the long-running worker: a failed cycle is logged, never fatal."""
    try:
        run_cycle(svc).log_summary(log)
    except LockHeldError as exc:
        log.warning("skipping this cycle: %s", exc)
    except ProcessorError as exc:
        log.error("cycle failed, retrying at the next poll: %s", exc)
        svc.mailbox.close()  # reconnect next time


def run_forever(svc: Services) -> None:
    """Poll on an APScheduler interval job (and wake on IMAP IDLE) until SIGTERM/SIGINT.

    The cycles themselves run here, in the main thread: the understanding time limit
    is a SIGALRM timer, which only the main thread can take. The scheduler's job and
    the IDLE watcher only say that a cycle is due; a signal stops between messages.
    """
    from processor.push import start_push

    due = threading.Event()
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        due.set,
        "interval",
        seconds=svc.config.worker.poll_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current message", signum)
        svc.stop.set()
        due.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
    watcher = start_push(svc.config, wake=due.set, stop=svc.stop)
    try:
        while not svc.stop.is_set():
            due.wait()
            due.clear()
            if not svc.stop.is_set():
                run_cycle_logged(svc)
    finally:
        scheduler.shutdown(wait=False)
        if watcher is not None:
            watcher.halt()  # cut its IDLE short: it may be 20 minutes from returning
            watcher.join(timeout=5)
        svc.mailbox.close()
        svc.store.close()
