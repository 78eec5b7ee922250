"""The staff's commands: attendees, report, review, retry, digest, purge.

`processor/cli.py` adds these to its parser with `add_staff_commands` and hands the
parsed arguments to `run_staff_command`, which answers None for commands not its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from processor.config import Config
from processor.errors import PermanentError
from processor.store import Store

COMMANDS = ("attendees", "report", "review", "retry", "digest", "purge")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-12-10, got {text!r}") from None


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date and time, got {text!r}") from None
    return value if value.tzinfo is not None else value.astimezone()


def _by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", help="who is acting, for the audit trail (default: login name)")


def add_staff_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    attendees = sub.add_parser("attendees", help="the door list and online list of a meeting")
    attendees.add_argument("meeting", help="meeting id")
    attendees.add_argument("--format", choices=("table", "csv"), default="table")

    report = sub.add_parser("report", help="write a printable HTML report")
    report.add_argument("--output", type=Path, default=Path("report.html"))
    report.add_argument("--meeting", help="only this meeting id")
    report.add_argument("--since", type=_day, help="first day (YYYY-MM-DD), committee time")
    report.add_argument("--until", type=_day, help="last day (YYYY-MM-DD), included")

    review = sub.add_parser("review", help="act on messages referred to staff")
    actions = review.add_subparsers(dest="review_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="referred messages waiting for a decision")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    confirm = actions.add_parser("confirm", help="give the resident a place and tell them")
    confirm.add_argument("id", help="the id from `review list`, or a Message-ID")
    confirm.add_argument("--mode", choices=("online", "in_person"), required=True)
    confirm.add_argument("--party", type=int, help="people in person, resident included")
    confirm.add_argument("--meeting", help="meeting id (default: the message's)")
    reject = actions.add_parser("reject", help="decline, telling the resident why")
    reject.add_argument("id", help="the id from `review list`, or a Message-ID")
    reject.add_argument("--reason", required=True, help="why, in words the resident will read")
    resend = actions.add_parser("resend", help="send the last reply again")
    resend.add_argument("id", help="the id from `review list`, or a Message-ID")
    for action in (confirm, reject, resend):
        _by(action)

    retry = sub.add_parser("retry", help="try a message's failed replies and Teams changes again")
    retry.add_argument("id", help="the message's id in the log, or its Message-ID")
    _by(retry)

    digest = sub.add_parser("digest", help="email staff a summary of the last 24 hours")
    digest.add_argument("--to", help="staff address (default: committee.contact)")
    digest.add_argument("--now", type=_moment, help=argparse.SUPPRESS)

    purge = sub.add_parser("purge", help="delete personal data of meetings long over")
    purge.add_argument("--days", type=int, default=90, help="keep this many days (default 90)")
    purge.add_argument("--now", type=_moment, help=argparse.SUPPRESS)
    _by(purge)


def run_staff_command(args: argparse.Namespace, config: Config) -> int | None:
    """Run one of the staff commands; None when `args.command` is not one of them."""
    handlers: dict[str, Callable[[argparse.Namespace, Config], int]] = {
        "attendees": command_attendees,
        "report": command_report,
        "review": command_review,
        "retry": command_review,
        "digest": command_digest,
        "purge": command_purge,
    }
    handler = handlers.get(args.command)
    return None if handler is None else handler(args, config)


def _actor(args: argparse.Namespace) -> str:
    from processor.review import default_actor

    given = (getattr(args, "by", None) or "").strip()
    return given or default_actor()


def command_attendees(args: argparse.Namespace, config: Config) -> int:
    from processor.report import attendee_lists, attendees_as_csv, attendees_as_table

    store = Store(config.storage.path)
    try:
        lists = attendee_lists(store, config, args.meeting)
    finally:
        store.close()
    render = attendees_as_csv if args.format == "csv" else attendees_as_table
    sys.stdout.write(render(lists))
    return 0


def command_report(args: argparse.Namespace, config: Config) -> int:
    from processor.report import render_report

    store = Store(config.storage.path)
    try:
        html = render_report(
            store,
            config,
            meeting_id=args.meeting,
            since=args.since,
            until=args.until,
            now=datetime.now(UTC),
        )
    finally:
        store.close()
    try:
        args.output.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise PermanentError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"report written to {args.output}")
    return 0


def command_review(args: argparse.Namespace, config: Config) -> int:
    from processor import review
    from processor.services import build_services

    action = "retry" if args.command == "retry" else args.review_action
    if action == "list":
        return review_list(config, args.format)
    svc = build_services(config)
    try:
        actor = _actor(args)
        if action == "confirm":
            result = review.confirm(
                svc, args.id, mode=args.mode, party=args.party, meeting_id=args.meeting, actor=actor
            )
        elif action == "reject":
            result = review.reject(svc, args.id, reason=args.reason, actor=actor)
        elif action == "resend":
            result = review.resend(svc, args.id, actor=actor)
        else:
            result = review.retry(svc, args.id, actor=actor)
        print(f"{result.message_id}: {result.summary} (recorded as {actor})")
        if not result.queued:
            print("nothing new to send: that was already queued or sent")
        report = review.dispatch_now(svc)
        if report is None:
            print("a worker is running; it will send this on its next cycle")
        else:
            print(
                f"sent {report.replies_sent} reply(ies), {report.calendar_changes} Teams change(s)"
            )
            for error in report.errors:
                print(f"warning: {error} (the worker will retry)", file=sys.stderr)
    finally:
        svc.mailbox.close()
        svc.store.close()
    return 0


def review_list(config: Config, fmt: str) -> int:
    from processor import staffstore

    store = Store(config.storage.path)
    try:
        items = staffstore.review_queue(store)
    finally:
        store.close()
    if fmt == "json":
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return 0
    for item in items:
        subject = " ".join((item["subject"] or "").split())[:60]
        print(f"{item['id']:>5}  {item['received_at']}  {item['sender']}  {subject!r}")
        print(f"       {' '.join((item['reason'] or '').split())}")
    print(f"{len(items)} message(s) waiting for review")
    return 0


def command_digest(args: argparse.Namespace, config: Config) -> int:
    from processor.digest import build_digest, send_digest

    to = args.to or config.committee.contact
    if "@" not in to:
        raise PermanentError("committee.contact is not an email address: pass --to ADDRESS")
    store = Store(config.storage.path)
    try:
        message = build_digest(store, config, to, args.now or datetime.now(UTC))
    finally:
        store.close()
    send_digest(config, message)
    print(f"digest sent to {to}")
    return 0


def command_purge(args: argparse.Namespace, config: Config) -> int:
    from processor.retention import purge

    store = Store(config.storage.path)
    try:
        result = purge(
            store, config, days=args.days, now=args.now or datetime.now(UTC), actor=_actor(args)
        )
    finally:
        store.close()
    print(f"purged data older than {result.cutoff.date().isoformat()}: {result.counts.describe()}")
    return 0
