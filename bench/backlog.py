"""Backlog throughput: `run --once` over N waiting requests against the I/O floor.

Starts Dovecot, aiosmtpd and the Graph fake; loads N simple online requests; times the
real CLI end to end (a subprocess, start-up included). Then, in the same run and on
the same servers, times the I/O floor for the same work: a raw imapclient fetch of
the N messages (BODY.PEEK[] in chunks), the N replies the worker sent, resent over one
SMTP connection, and one UID MOVE of all of them. `--profile` also runs the CLI once
more under cProfile over a fresh backlog and prints the top 25 cumulative entries.
`--repeat R` does it all R times on fresh servers and prints the median ratio: on two
shared cores one run moves by 10 to 20 %.

Run: .venv/bin/python bench/backlog.py [--n 2000] [--repeat 10] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import re
import smtplib
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import Servers, cli_command, cli_env, load_requests, request, run_once, servers

from processor.dispatch import REPLY_GROUP
from processor.store import Store

CHUNK = 100  # the worker's default mailbox.fetch_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="requests in the backlog")
    parser.add_argument("--profile", action="store_true", help="also profile one run")
    parser.add_argument("--profile-out", type=Path, help="keep the cProfile data here")
    parser.add_argument(
        "--exchange",
        action="store_true",
        help="an SMTP server that files each message in Sent before it answers, as "
        "Exchange Online does (smtp.server_files_sent): replies overlap deciding",
    )
    parser.add_argument(
        "--kept",
        type=int,
        default=0,
        help="messages (and their replies) already in the store, as after months of use",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs, each on fresh servers; with more than one, the ratios and their median",
    )
    args = parser.parse_args()

    ratios = []
    for number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"--- run {number} of {args.repeat}")
        ratios.append(one_run(args))
    if args.repeat > 1:
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratios          {listed}")
        print(
            f"median ratio    {statistics.median(ratios):7.2f} x   "
            f"({sum(r <= 2 for r in ratios)} of {len(ratios)} at or under 2x)"
        )
    if args.profile:
        profile(args.n, args.profile_out)


def one_run(args: argparse.Namespace) -> float:
    """One backlog on fresh servers: the run, its floor, and their ratio (printed)."""
    with servers() as env:
        smtp_kind = "files Sent itself (Exchange)" if args.exchange else "plain"
        print(
            f"backlog: N={args.n} requests, graph {'on' if env.graph else 'off'}, "
            f"SMTP server {smtp_kind}"
        )
        if args.exchange:
            files_sent_copies(env)
        if args.kept:
            keep_history(env.dir / "store.sqlite3", args.kept)
            print(f"store: {args.kept} messages and replies kept from earlier cycles")
        load_requests(env.dovecot, range(args.n))
        elapsed, log = run_once(env)
        check_outcome(env, args.n)
        fetch, smtp, move, sent = io_floor(env, args.n)

    floor = fetch + smtp + move
    print(f"run --once      {elapsed:7.2f} s   {args.n / elapsed:7.0f} msg/s")
    print(
        f"I/O floor       {floor:7.2f} s   {args.n / floor:7.0f} msg/s"
        f"   (fetch {fetch:.2f} s, smtp {smtp:.2f} s, move {move:.2f} s)"
    )
    print(f"ratio           {elapsed / floor:7.2f} x   (target <= 2x)")
    split = SUMMARY.search(log)
    if split:
        print(
            f"inside the run  {float(split['deciding']):.2f} s deciding, replies going out "
            f"alongside; then {float(split['finishing']):.2f} s to finish sending, of which "
            f"{float(split['filing']):.2f} s filing and Teams; the rest is start-up and listing"
        )
    print(
        f"(for scale: filing the N Sent copies, which plain SMTP needs, {REPLY_GROUP} to a "
        f"MULTIAPPEND as the worker does, takes {sent:.2f} s)"
    )
    return elapsed / floor


# The worker's own account of the cycle (services.CycleReport.log_summary).
SUMMARY = re.compile(
    r"\((?P<deciding>[\d.]+) s deciding, then (?P<finishing>[\d.]+) s to finish: "
    r"(?P<filing>[\d.]+) s filing and Teams\)"
)


def keep_history(path: Path, kept: int) -> None:
    """`kept` decided and filed messages, each with its reply sent, from an earlier life
    of the folder (another UIDVALIDITY): what months of use leave in the store."""
    store = Store(path)
    at = "2026-09-01T09:00:00+00:00"
    raw = request(10**6) * 2  # about 1.5 KB, as a short request is
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO messages(message_id, sha256, received_at, stored_at, raw, "
            "raw_complete, size, mailbox_key, sync_token, sender, state, outcome) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?, 'earlier-life', ?, 'filed', 'confirmed')",
            (
                (
                    f"<kept-{n}@residents.example>",
                    f"{n:064x}",
                    at,
                    at,
                    raw,
                    len(raw),
                    str(n),
                    f"kept{n}@residents.example",
                )
                for n in range(kept)
            ),
        )
        db.executemany(
            "INSERT INTO outbox(idempotency_key, kind, message_id, recipient, payload, "
            "state, next_attempt_at, created_at, updated_at) "
            "VALUES (?, 'reply', ?, ?, ?, 'done', ?, ?, ?)",
            (
                (
                    f"reply:<kept-{n}.reply@council.example>",
                    f"<kept-{n}@residents.example>",
                    f"kept{n}@residents.example",
                    raw,
                    at,
                    at,
                    at,
                )
                for n in range(kept)
            ),
        )
    store.close()


def files_sent_copies(env: Servers) -> None:
    """The SMTP server APPENDs each message to Sent before its 250 (one IMAP session,
    kept for the run, also while the floor is measured: the same server throughout)."""
    client = env.imap()
    client.create_folder("Sent")
    env.smtpd.file_sent_copy = lambda raw: client.append("Sent", raw, flags=[b"\\Seen"])
    env.config.write_text(
        env.config.read_text().replace("[smtp]\n", "[smtp]\nserver_files_sent = true\n")
    )


def check_outcome(env: Servers, n: int) -> None:
    """The timing means nothing unless the work was done: N replies, N filed."""
    log = subprocess.run(
        cli_command(env.config, "log", "--format", "json"),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    outcomes = Counter(row["outcome"] for row in json.loads(log.stdout))
    filed = len(env.dovecot.uids("Processed"))
    print(f"outcomes {dict(outcomes)}; replies received {len(env.smtpd.messages)}; filed {filed}")
    if len(env.smtpd.messages) != n or filed != n:
        print("warning: the run did not finish the whole backlog")
    if env.graph is not None:
        patches = env.graph.requests("PATCH", "/events/")
        print(f"Graph PATCHes {len(patches)}; schema errors {len(env.graph.validation_errors())}")


def io_floor(env: Servers, n: int) -> tuple[float, float, float, float]:
    """The same I/O done directly: fetch, send the same replies, move; and Sent copies."""
    client = env.imap()
    try:
        client.create_folder("Floor")  # set-up, untimed: the worker's folders exist too
        client.create_folder("FloorSent")
        started = time.perf_counter()
        client.select_folder("Processed")
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), CHUNK):
            data = client.fetch(uids[start : start + CHUNK], ["BODY.PEEK[]"])
            assert all(b"BODY[]" in item for item in data.values())
            del data
        fetch = time.perf_counter() - started

        replies = [(m.mail_from, list(m.rcpt_tos), m.raw) for m in env.smtpd.messages]
        started = time.perf_counter()
        with smtplib.SMTP(env.smtpd.host, env.smtpd.port, timeout=30) as smtp:
            for sender, recipients, raw in replies:
                smtp.sendmail(sender, recipients, raw)
        smtp_time = time.perf_counter() - started

        started = time.perf_counter()
        client.move(uids, "Floor")
        move = time.perf_counter() - started

        started = time.perf_counter()
        for start in range(0, len(replies), REPLY_GROUP):
            group = replies[start : start + REPLY_GROUP]
            client.multiappend(
                "FloorSent", [{"msg": raw, "flags": [b"\\Seen"]} for *_, raw in group]
            )
        sent = time.perf_counter() - started
    finally:
        client.logout()
    assert len(uids) == n, f"expected {n} messages in Processed, found {len(uids)}"
    return fetch, smtp_time, move, sent


def profile(n: int, keep: Path | None) -> None:
    with servers() as env:
        load_requests(env.dovecot, range(n))
        out = keep.resolve() if keep is not None else env.dir / "run.prof"
        elapsed, _ = run_once(env, profile_to=out)
        text = io.StringIO()
        stats = pstats.Stats(str(out), stream=text)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(25)
        print(f"\nprofile of run --once over N={n} ({elapsed:.2f} s under cProfile):")
        print(text.getvalue())


if __name__ == "__main__":
    main()
