"""`attendance-processor check`: validate config and try each connection, with fixes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from processor.config import Config
from processor.errors import ProcessorError


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _try(name: str, action: Callable[[], str], fix: str) -> CheckResult:
    try:
        return CheckResult(name, True, action())
    except ProcessorError as exc:
        return CheckResult(name, False, str(exc), fix)
    except OSError as exc:
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}", fix)


def check_store(config: Config) -> str:
    from processor.store import Store

    store = Store(config.storage.path)
    store.close()
    return f"SQLite store at {config.storage.path}"


def check_mailbox(config: Config) -> str:
    from processor.services import build_mailbox, outlook_tokens

    mailbox = build_mailbox(config, outlook_tokens(config))
    try:
        count = len(mailbox.list_messages())
    finally:
        mailbox.close()
    where = config.mailbox.path if config.mailbox.kind == "maildir" else config.mailbox.host
    return f"{config.mailbox.kind} {where}: {count} message(s) waiting in {config.mailbox.folder}"


def check_transport(config: Config) -> str:
    from processor.services import build_transport, outlook_tokens

    transport = build_transport(config, outlook_tokens(config))
    with transport.connect():
        pass
    return f"{config.smtp.kind} transport connected"


def check_graph_token(config: Config) -> str:
    from processor.auth import TokenProvider, graph_scope

    TokenProvider(config.graph).token(graph_scope(config.graph.base_url))
    return f"token from {config.graph.authority}/{config.graph.tenant_id}"


def check_calendar(config: Config) -> str:
    from processor.graph import GraphCalendar, build_calendar

    calendar = build_calendar(config)
    assert isinstance(calendar, GraphCalendar)
    providers = calendar.allowed_providers()
    if "teamsForBusiness" not in providers:
        raise ProcessorError(
            f"{config.graph.organiser}'s calendar allows {providers or 'no'} online meetings, "
            "not teamsForBusiness"
        )
    return f"{config.graph.organiser}'s calendar allows Teams meetings"


def run_checks(config: Config) -> int:
    results = [CheckResult("config", True, f"{config.source} is valid")]
    results.append(
        _try("store", lambda: check_store(config), "make storage.path's folder writable")
    )
    results.append(
        _try(
            "mailbox",
            lambda: check_mailbox(config),
            "check mailbox.host/port/security, the login and the password or "
            "app permission (IMAP.AccessAsApp + Exchange service principal)",
        )
    )
    results.append(
        _try(
            "transport",
            lambda: check_transport(config),
            "check smtp.host/port/security and the login (SMTP.SendAsApp)",
        )
    )
    uses_graph = (config.graph.enabled and not config.graph.dry_run) or config.smtp.kind == "graph"
    if uses_graph or "oauth2" in (config.mailbox.auth, config.smtp.auth):
        results.append(
            _try(
                "graph token",
                lambda: check_graph_token(config),
                "check graph.tenant_id, client_id and the client secret or "
                "certificate of the app registration",
            )
        )
    if config.graph.enabled and not config.graph.dry_run:
        results.append(
            _try(
                "teams calendar",
                lambda: check_calendar(config),
                "grant Calendars.ReadWrite and allow Teams meetings on the organiser mailbox",
            )
        )
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        print(f"[{mark}] {result.name}: {result.detail}")
        if not result.ok and result.fix:
            print(f"       fix: {result.fix}")
    return 0 if all(r.ok for r in results) else 1
