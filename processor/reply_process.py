"""Plain SMTP's replies for a large cycle, sent from a second process while it decides.

With plain SMTP nothing but our sent journal records a 250, so the line must follow the
250 at once. A sending *thread* cannot promise that beside a busy deciding thread: it
waits for the interpreter lock first (bench/crash_matrix.py caught a kill in that
wait). A process of its own has no such wait, and it outlives a killed worker just
long enough to journal the reply in hand:

- it shares the worker's store lock (the same open file), so no new worker starts
  until it has exited;
- it reads orders on stdin: `poke` (decisions committed: send what they made due),
  `done` (send the rest, then exit) or `stop` (finish the reply in hand, send no more).
  End of input without `done` means the worker died, and counts as `stop`;
- it ignores SIGINT and SIGTERM, which reach it with the worker's: the worker says
  when to stop, after the reply in hand;
- its own sending and filing run as in a worker (sender.RepliesAlongside, threads),
  and it writes what it did as one JSON line on stdout when it exits.

A small cycle sends after deciding instead (`worker.reply_process_from`): starting a
Python process costs more than its few replies would gain.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from processor import faults
from processor.config import Config
from processor.errors import ProcessorError

if TYPE_CHECKING:
    from processor.sender import RepliesAlongside
    from processor.services import CycleReport, Services

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# How often the worker, waiting for its reply process, looks for a stop to pass on.
STOP_CHECK = 0.1  # seconds


class ReplyProcessFailed(ProcessorError):
    """The reply process failed or died; its rows are settled by the next cycle."""


@dataclass(frozen=True)
class Orders:
    """What the reply process needs to build its own adapters (no secrets: the
    config names where they are)."""

    config: Config
    clock: Callable[[], datetime]  # the worker's: services.utc_now, or FixedClock for --now
    worker: int  # its pid: a fault-point kill in the reply process kills it too
    log_level: int


class ReplyProcess:
    """The worker's handle: start, `poke` per commit, `finish` on leaving the cycle."""

    def __init__(self, svc: Services) -> None:
        orders = Orders(
            config=svc.config,
            clock=svc.clock,
            worker=os.getpid(),
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        given = pickle.dumps(orders)  # before the process: a clock that won't pickle fails here
        lock = svc.store.lock.fileno()
        env = dict(os.environ)
        paths = [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "processor.reply_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=() if lock is None else (lock,),
            env=env,
        )
        assert self._process.stdin is not None
        self._orders: IO[bytes] = self._process.stdin
        self._say(given)

    def poke(self) -> None:
        self._say(b"poke\n")

    def finish(self, report: CycleReport, *, send_rest: bool, stop: threading.Event) -> None:
        """Tell it to send the rest (or stop after the reply in hand) and wait for it;
        a stop that comes meanwhile (SIGTERM) is passed on, so the worker stops as soon
        as it would have sending from a thread of its own.

        Its stdin stays open until it has exited: the end of it, even after `done`,
        means that this worker died.
        """
        self._say(b"done\n" if send_rest else b"stop\n")
        stopping = not send_rest
        assert self._process.stdout is not None
        said = bytearray()
        pipe = self._process.stdout.fileno()
        while True:
            if not stopping and stop.is_set():
                self._say(b"stop\n")
                stopping = True
            ready, _, _ = select.select([pipe], [], [], STOP_CHECK)
            if ready:
                chunk = os.read(pipe, 65536)
                if not chunk:
                    break
                said += chunk
        code = self._process.wait()
        with contextlib.suppress(BrokenPipeError):
            self._orders.close()
        try:
            outcome = json.loads(said)
        except ValueError:
            raise ReplyProcessFailed(f"the reply process died (exit status {code})") from None
        report.replies_sent += outcome["replies_sent"]
        report.errors.extend(outcome["errors"])
        if outcome["failure"]:
            raise ReplyProcessFailed(f"the reply process failed: {outcome['failure']}")

    def _say(self, order: bytes) -> None:
        try:
            self._orders.write(order)
            self._orders.flush()
        except (BrokenPipeError, ValueError):
            pass  # it has died: `finish` says so


def main() -> int:
    """The reply process: `python -m processor.reply_process`, started by the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "w")  # the outcome; anything printed goes to stderr
    os.dup2(2, 1)
    # Unbuffered: the pickle is read to its last byte and no further, and the thread
    # that follows the orders holds no buffer lock, which would hold up this
    # interpreter's exit for a second while it waits in a read.
    orders_in = io.FileIO(sys.stdin.fileno(), "rb", closefd=False)
    try:
        orders: Orders = pickle.load(orders_in)
    except (EOFError, pickle.UnpicklingError):
        return 1  # the worker died before it gave its orders
    logging.basicConfig(
        level=orders.log_level,
        format="%(asctime)s %(levelname)s %(name)s[replies]: %(message)s",
        stream=sys.stderr,
    )
    faults.serve(orders.worker)

    from processor.sender import REPLY_PROCESS_SWITCH_INTERVAL, RepliesAlongside
    from processor.services import CycleReport, build_services

    # No calendar: the Teams update is the worker's, and Graph's modules would only
    # slow this process's start.
    svc = build_services(orders.config, clock=orders.clock, calendar=False)
    report = CycleReport()
    failure = None
    try:
        with RepliesAlongside(
            svc, report, threads=True, switch_interval=REPLY_PROCESS_SWITCH_INTERVAL
        ) as replies:
            done = threading.Event()
            threading.Thread(
                target=_follow, args=(orders_in, replies, svc.stop, done), daemon=True
            ).start()
            done.wait()
    except Exception as exc:
        log.exception("sending replies failed")
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        svc.mailbox.close()
        svc.store.close()
    outcome = {"replies_sent": report.replies_sent, "errors": report.errors, "failure": failure}
    json.dump(outcome, out)
    out.close()
    return 0 if failure is None else 1


def _follow(
    orders: IO[bytes], replies: RepliesAlongside, stop: threading.Event, done: threading.Event
) -> None:
    """Read the worker's orders until the end of them; `done` once there is no more to
    send than what is due. The end without `stop` or `done` first, or after `done`, is
    the worker's death: send no more than the reply in hand."""
    for order in orders:
        if order == b"poke\n":
            replies.poke()
        elif order == b"done\n":
            done.set()
        else:
            break
    stop.set()
    done.set()


if __name__ == "__main__":
    sys.exit(main())
