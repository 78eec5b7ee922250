"""The command line: `attendance-processor [--config PATH] run|check|log|demo`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from processor import __version__
from processor.config import Config, load_config
from processor.errors import ConfigError, LockHeldError, ProcessorError
from processor.models import OUTCOMES
from processor.staffcli import add_staff_commands, run_staff_command

log = logging.getLogger("processor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attendance-processor",
        description="Turn residents' emails into committee meeting registrations.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML config file (default: $PROCESSOR_CONFIG, then config.toml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the scheduled worker, until SIGTERM/SIGINT")
    run.add_argument("--once", action="store_true", help="one full cycle, then exit")
    run.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)

    sub.add_parser("check", help="validate config and try each connection")

    log_cmd = sub.add_parser("log", help="print the processed-requests log")
    log_cmd.add_argument("--format", choices=("table", "csv", "json"), default="table")
    log_cmd.add_argument("--meeting", help="only this meeting id")
    log_cmd.add_argument(
        "--status", "--outcome", dest="status", choices=OUTCOMES, help="only this outcome"
    )
    log_cmd.add_argument("--sender", help="only messages from this address")
    log_cmd.add_argument(
        "--since", type=local_datetime, help="received at or after (ISO date or date-time)"
    )
    log_cmd.add_argument(
        "--until", type=local_datetime, help="received before (ISO date or date-time)"
    )

    demo = sub.add_parser(
        "demo", help="run the worker over the bundled sample mailbox and print the log"
    )
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="working folder")
    add_staff_commands(sub)
    return parser


def local_datetime(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is the machine's local time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.astimezone()


def config_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    return Path(os.environ.get("PROCESSOR_CONFIG") or "config.toml")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "demo":
            from processor.demo import run_demo

            return run_demo(args.out)
        config = load_config(config_path(args.config))
        return dispatch_command(args, config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except LockHeldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ProcessorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def dispatch_command(args: argparse.Namespace, config: Config) -> int:
    if (staff := run_staff_command(args, config)) is not None:
        return staff
    if args.command == "run":
        return command_run(config, once=args.once, now=args.now)
    if args.command == "check":
        from processor.check import run_checks

        return run_checks(config)
    if args.command == "log":
        return command_log(config, args)
    raise AssertionError(args.command)


def command_run(config: Config, once: bool, now: datetime | None = None) -> int:
    from processor.services import FixedClock, build_services
    from processor.worker import run_forever, run_once

    fixed = now.astimezone() if now is not None and now.tzinfo is None else now
    svc = build_services(config, clock=FixedClock(fixed) if fixed is not None else None)
    if not once:
        run_forever(svc)
        return 0
    try:
        report = run_once(svc)
    finally:
        svc.store.close()
    report.log_summary(log)
    return 0


def command_log(config: Config, args: argparse.Namespace) -> int:
    from processor import stafflog
    from processor.store import Store

    store = Store(config.storage.path)
    try:
        entries = stafflog.log_entries(
            store,
            meeting=args.meeting,
            status=args.status,
            sender=args.sender,
            since=args.since,
            until=args.until,
        )
    finally:
        store.close()
    render = {"json": stafflog.as_json, "csv": stafflog.as_csv, "table": stafflog.as_table}
    sys.stdout.write(render[args.format](entries))
    if args.format != "csv":
        sys.stdout.write("\n")
    return 0
