"""Crash injection: kill the real worker at named points or at random, then check the books.

Shared by tests/test_crash.py (assertions) and bench/crash_matrix.py (the printed
matrix). A scenario is a mailbox of requests in a real Dovecot, the real CLI, a real
aiosmtpd and the HTTPS Graph fake; after the faults, one clean `run --once` must
leave every resident with exactly one reply, at most one Teams add, and every
message with an outcome.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import NOW, ORGANISER, cli_command, cli_env, request, run_cli, write_config

ONLINE = "Please send me the Teams link for the 10 December meeting.\n\nResident {n}"
IN_PERSON = "I would like to come in person on 10 December with my neighbour.\n\nResident {n}"
AUTOMATED = "I am out of the office."


@dataclass(frozen=True)
class Tally:
    """What one scenario left behind; all zero is the target."""

    duplicate_replies: int
    duplicate_invites: int
    lost_requests: int
    missing_replies: int
    kills: int


def load_mailbox(dovecot: Dovecot, count: int) -> dict[str, str]:
    """`count` requests: online, in person and automated; returns Message-ID -> sender."""
    senders = {}
    for n in range(1, count + 1):
        sender = f"resident{n}@residents.example"
        if n % 5 == 0:
            raw = request(
                n,
                f"Away {n} <{sender}>",
                "Auto: Committee",
                AUTOMATED,
                Auto_Submitted="auto-replied",
            )
        else:
            body = ONLINE if n % 2 else IN_PERSON
            raw = request(n, f"Resident {n} <{sender}>", "Committee", body.format(n=n))
        dovecot.append("INBOX", raw)
        senders[f"<e2e-{n}@residents.example>"] = sender
    return senders


def run_killed_at(config: Path, point: str, nth: int) -> bool:
    """One run that SIGKILLs itself the nth time it passes `point`; True if it died."""
    result = run_cli(config, "run", "--once", "--now", NOW, faults=f"{point}=kill:{nth}")
    return result.returncode == -signal.SIGKILL


def run_killed_randomly(config: Path, rng: random.Random, max_delay: float) -> bool:
    """One run killed by SIGKILL after a random delay; True if it was still running."""
    process = subprocess.Popen(
        cli_command(config, "run", "--once", "--now", NOW),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(timeout=rng.uniform(0.05, max_delay))
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return True


def finish(config: Path) -> None:
    """The clean run after the faults: it must complete everything."""
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr


def tally(
    config: Path, senders: dict[str, str], smtpd: SmtpServer, graph: GraphFake, kills: int
) -> Tally:
    result = run_cli(config, "log", "--format", "json")
    assert result.returncode == 0, result.stderr
    log = {row["message_id"]: row for row in json.loads(result.stdout)}
    replies = Counter(m.message["In-Reply-To"] for m in smtpd.messages)
    expected_replies = {mid for mid, row in log.items() if row["outcome"] != "ignored"}
    adds: Counter[str] = Counter()
    current: set[str] = set()
    for call in graph.requests("PATCH", "/events/"):
        now = {a["emailAddress"]["address"].lower() for a in call.json().get("attendees", [])}
        adds.update(now - current)
        current = now
    events = graph.user_events(ORGANISER)
    online = {
        senders[mid]
        for mid, row in log.items()
        if row["mode"] == "online" and row["outcome"] == "confirmed"
    }
    attendees = set(graph.attendees(ORGANISER, events[0]["id"])) if events else set()
    missing_invites = len(online - attendees)
    return Tally(
        duplicate_replies=sum(c - 1 for c in replies.values() if c > 1),
        duplicate_invites=sum(c - 1 for c in adds.values() if c > 1) + len(events[1:]),
        lost_requests=len(set(senders) - set(log)) + missing_invites,
        missing_replies=len(expected_replies - set(replies)),
        kills=kills,
    )


def scenario_config(
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph: GraphFake | None,
    server_files_sent: bool,
    reply_process: bool = False,
) -> Path:
    """The worker's config; with `server_files_sent` the SMTP server files the Sent copy
    itself before it answers 250, as Exchange Online does for SMTP AUTH submissions;
    with `reply_process`, plain SMTP's replies go out from the reply process whatever
    the size of the cycle (worker.reply_process_from = 1)."""
    config = write_config(tmp_path, dovecot, smtpd, graph)
    if server_files_sent:
        smtpd.file_sent_copy = lambda raw: dovecot.append("Sent", raw)
        config.write_text(
            config.read_text().replace("[smtp]\n", "[smtp]\nserver_files_sent = true\n")
        )
    if reply_process:
        config.write_text(
            config.read_text().replace("[worker]\n", "[worker]\nreply_process_from = 1\n")
        )
    return config


def named_point_scenario(
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph: GraphFake,
    point: str,
    nth: int,
    count: int = 10,
    server_files_sent: bool = False,
    reply_process: bool = False,
) -> Tally:
    senders = load_mailbox(dovecot, count)
    config = scenario_config(tmp_path, dovecot, smtpd, graph, server_files_sent, reply_process)
    kills = 0
    # Kill at the point again and again (each run gets further), then run clean.
    for _ in range(count + 2):
        if not run_killed_at(config, point, nth):
            break
        kills += 1
    finish(config)
    return tally(config, senders, smtpd, graph, kills)


def random_kill_scenario(
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph: GraphFake,
    seed: int,
    count: int = 10,
    runs: int = 6,
    server_files_sent: bool = False,
    reply_process: bool = False,
) -> Tally:
    senders = load_mailbox(dovecot, count)
    config = scenario_config(tmp_path, dovecot, smtpd, graph, server_files_sent, reply_process)
    rng = random.Random(seed)
    # A clean cycle of ten requests takes about a second: most runs die part-way.
    kills = sum(run_killed_randomly(config, rng, max_delay=1.2) for _ in range(runs))
    time.sleep(0.1)
    finish(config)
    return tally(config, senders, smtpd, graph, kills)
