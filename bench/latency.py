"""Push latency: APPEND one request, time until its reply reaches the SMTP server.

The worker runs with `mailbox.idle = true` and the default 60 s poll, so only IDLE can
explain a fast answer. When processor/worker.py wires processor.push into `run`, the
real CLI is used; until then (or with --in-process) the worker is driven in this
process the way it is meant to be wired: build_services, an IdleWatcher whose wake()
sets an event, and a loop that runs one cycle each time it is woken.

Run: .venv/bin/python bench/latency.py [--requests 50] [--in-process]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import NOW, REPO, Servers, cli_command, cli_env, request, servers

from processor.config import load_config
from processor.pipeline import run_cycle
from processor.push import start_push
from processor.services import build_services

REPLY_TIMEOUT = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--in-process", action="store_true", help="even if worker.py is wired")
    args = parser.parse_args()
    wired = "push" in (REPO / "processor" / "worker.py").read_text(encoding="utf-8")
    in_process = args.in_process or not wired
    logging.basicConfig(level=logging.WARNING)

    with servers(graph=False, mailbox_extra="idle = true") as env:
        os.environ.update(cli_env())
        mode = "in-process IdleWatcher + run_cycle" if in_process else "CLI `run`"
        print(f"latency: {args.requests} requests, worker: {mode}, poll 60 s, IDLE on")
        stop = (in_process_worker if in_process else cli_worker)(env)
        try:
            times, notices = measure(env, args.requests)
        finally:
            stop()
            # The watcher is still in IDLE; the servers going away now is not news.
            logging.getLogger("processor.push").setLevel(logging.CRITICAL)

    print(summary("APPEND -> IDLE notice  ", notices))
    print(summary("APPEND -> reply at SMTP", times) + "   (target: median < 1000 ms)")


def summary(label: str, times: list[float]) -> str:
    times = sorted(times)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    return (
        f"{label}: median {statistics.median(times) * 1000:4.0f} ms, p95 {p95 * 1000:4.0f} ms, "
        f"min {times[0] * 1000:4.0f} ms, max {times[-1] * 1000:4.0f} ms  (n={len(times)})"
    )


def in_process_worker(env: Servers) -> Callable[[], None]:
    config = load_config(env.config)
    fixed = datetime.fromisoformat(NOW)
    stop_event = threading.Event()
    woken = threading.Event()

    def loop() -> None:
        # Built in this thread: the store's SQLite connection is bound to its creator.
        svc = build_services(config, clock=lambda: fixed)
        svc.stop = stop_event
        try:
            while not stop_event.is_set():
                run_cycle(svc)
                # Cleared after the wait, not before the cycle: a wake that comes
                # during a cycle runs one more cycle at once instead of being lost.
                woken.wait(config.worker.poll_seconds)
                woken.clear()
        finally:
            svc.mailbox.close()
            svc.store.close()

    worker = threading.Thread(target=loop, name="worker", daemon=True)
    worker.start()
    watcher = start_push(config, woken.set, stop_event)
    if watcher is None:
        sys.exit("start_push did not start: is mailbox.idle set?")

    def stop() -> None:
        stop_event.set()
        woken.set()
        worker.join(timeout=10)

    return stop


def cli_worker(env: Servers) -> Callable[[], None]:
    process = subprocess.Popen(
        cli_command(env.config, "run", "--now", NOW),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    )
    time.sleep(3.0)  # start-up and the first (empty) cycle

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    return stop


def measure(env: Servers, count: int) -> tuple[list[float], list[float]]:
    """One request at a time over a kept-open IMAP connection; the clock starts at APPEND.

    A second IdleWatcher in this process notes when the server announces each message,
    which splits the latency into the server's notice and the worker's cycle.
    """
    noticed: list[float] = []
    probe_stop = threading.Event()
    probe = start_push(
        load_config(env.config), lambda: noticed.append(time.perf_counter()), probe_stop
    )
    client = env.imap()
    replies: list[float] = []
    notices: list[float] = []
    try:
        time.sleep(1.0)  # both watchers are in IDLE
        for n in range(count):
            before = len(env.smtpd.messages)
            noticed.clear()
            raw = request(10_000 + n)
            started = time.perf_counter()
            client.append("INBOX", raw)
            while len(env.smtpd.messages) == before:
                if time.perf_counter() - started > REPLY_TIMEOUT:
                    sys.exit(f"no reply to request {n} within {REPLY_TIMEOUT} s")
                time.sleep(0.001)
            replies.append(time.perf_counter() - started)
            if noticed:
                notices.append(noticed[0] - started)
            # Dovecot batches changes for 500 ms before telling IDLE clients
            # (NOTIFY_DELAY_MSECS, src/lib-storage/mailbox-watch.c); the last cycle's
            # MOVE starts that timer, so the next APPEND waits until it has run out.
            time.sleep(1.0 + random.random() / 2)
    finally:
        probe_stop.set()
        client.logout()
        assert probe is not None
    return replies, notices


if __name__ == "__main__":
    main()
