"""The crash matrix: SIGKILL the real worker at each fault point and at random, then tally.

    .venv/bin/python bench/crash_matrix.py [--trials 3] [--count 12] [--random 10]

For each named fault point it runs `--trials` scenarios (each a fresh Dovecot,
aiosmtpd and Graph fake with `--count` requests) against plain SMTP, killing the
worker at the 1st, 2nd, 3rd... pass of the point until it gets through, then one
clean run: once with the replies sent after deciding (a small cycle's way) and once
from the reply process (a backlog's way, `worker.reply_process_from = 1`). `--random`
scenarios kill it at random moments instead: against an SMTP server that files its
own Sent copy (as Exchange Online does, replies from a thread), and against plain
SMTP both ways. Prints, per row: trials, kills, duplicate replies, duplicate
invites, lost requests, missing replies (target: all 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._servers import servers
from processor.faults import POINTS
from tests.crashkit import Tally, named_point_scenario, random_kill_scenario
from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer

ONCE_A_CYCLE = {"after_calendar", "before_move"}

Scenario = Callable[[Path, Dovecot, SmtpServer, GraphFake, int], Tally]


def at_point(point: str, count: int, reply_process: bool) -> Scenario:
    """Kill at `point`: the first pass for once-a-cycle points, else pass 2, 3, ... by trial."""

    def scenario(d: Path, i: Dovecot, o: SmtpServer, g: GraphFake, trial: int) -> Tally:
        nth = 1 if point in ONCE_A_CYCLE else 2 + trial
        return named_point_scenario(
            d, i, o, g, point, nth=nth, count=count, reply_process=reply_process
        )

    return scenario


def at_random(count: int, server_files_sent: bool, reply_process: bool = False) -> Scenario:
    def scenario(d: Path, i: Dovecot, o: SmtpServer, g: GraphFake, trial: int) -> Tally:
        return random_kill_scenario(
            d,
            i,
            o,
            g,
            seed=trial,
            count=count,
            server_files_sent=server_files_sent,
            reply_process=reply_process,
        )

    return scenario


def run_row(trials: int, scenario: Scenario) -> list[Tally]:
    results = []
    for trial in range(trials):
        with servers() as s:
            assert s.graph is not None, "the crash matrix needs the Graph fake's schema"
            results.append(scenario(s.dir, s.dovecot, s.smtpd, s.graph, trial))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="scenarios per fault point")
    parser.add_argument("--count", type=int, default=12, help="requests per scenario")
    parser.add_argument("--random", type=int, default=10, help="random-kill scenarios")
    args = parser.parse_args()

    rows: list[tuple[str, Scenario, int]] = [
        (f"{point}{suffix}", at_point(point, args.count, reply_process), args.trials)
        for reply_process, suffix in ((False, ""), (True, ", process"))
        for point in POINTS
        if point != "understand"
    ]
    rows.append(("random, Exchange", at_random(args.count, True), args.random))
    rows.append(("random, plain", at_random(args.count, False), args.random))
    rows.append(("random, process", at_random(args.count, False, True), args.random))
    header = (
        f"{'fault point':<24} {'trials':>6} {'kills':>6} {'dup replies':>12} "
        f"{'dup invites':>12} {'lost':>5} {'missing replies':>16}"
    )
    print(header)
    print("-" * len(header))
    started = time.monotonic()
    totals = [0, 0, 0, 0]
    for name, scenario, trials in rows:
        results = run_row(trials, scenario)
        figures = [
            sum(r.duplicate_replies for r in results),
            sum(r.duplicate_invites for r in results),
            sum(r.lost_requests for r in results),
            sum(r.missing_replies for r in results),
        ]
        totals = [t + f for t, f in zip(totals, figures, strict=True)]
        kills = sum(r.kills for r in results)
        print(
            f"{name:<24} {trials:>6} {kills:>6} {figures[0]:>12} {figures[1]:>12} "
            f"{figures[2]:>5} {figures[3]:>16}",
            flush=True,
        )
    print("-" * len(header))
    print(
        f"{'total':<24} {'':>6} {'':>6} {totals[0]:>12} {totals[1]:>12} {totals[2]:>5} "
        f"{totals[3]:>16}"
    )
    print(f"({time.monotonic() - started:.0f} s)")
    return 0 if totals == [0, 0, 0, 0] else 1


if __name__ == "__main__":
    raise SystemExit(main())
