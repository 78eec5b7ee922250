"""The worker: run one cycle, or run on a schedule until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from processor.errors import LockHeldError, ProcessorError
from processor.pipeline import run_cycle
from processor.services import CycleReport, Services

log = logging.getLogger(__name__)


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
    from apscheduler.schedulers.background import BackgroundScheduler

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
