"""Peak memory of `run --once`: N=200 against N=2000, and one 25 MB attachment on top.

Each case gets fresh servers and store. The peak RSS of the CLI process is the kernel's
rusage for that one child (os.wait4), taken by a tiny fresh interpreter that starts it,
so neither earlier cases nor this bench's own size can mask it. For the attachment
case mailbox.max_message_bytes is raised above the message's size, so the message is
read and answered (through the text-parts fetch), not referred unread.

Run: .venv/bin/python bench/memory.py [--small 200] [--large 2000] [--attachment-mb 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import NOW, Servers, cli_command, cli_env, load_requests, request, servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--attachment-mb", type=int, default=25)
    args = parser.parse_args()
    limit = f"max_message_bytes = {(args.attachment_mb * 2 + 10) * 1_000_000}"

    small = measure(f"N={args.small}", args.small, limit)
    large = measure(f"N={args.large}", args.large, limit)
    attached = measure(
        f"N={args.small} + one {args.attachment_mb} MB attachment",
        args.small,
        limit,
        attachment_mb=args.attachment_mb,
    )
    growth = (large - small) / small * 100
    added = (attached - small) / 1024
    print(f"growth N={args.small} -> N={args.large}: {growth:+.1f} %   (target < 20 %)")
    print(f"the {args.attachment_mb} MB attachment adds {added:+.1f} MB   (target < 5 MB)")


PEAK_OF_CHILD = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"exit status {os.waitstatus_to_exitcode(status)}")
print(usage.ru_maxrss)
"""


def measure(label: str, n: int, mailbox_extra: str, attachment_mb: int = 0) -> int:
    """Peak RSS in KiB of one `run --once` over a fresh backlog."""
    with servers(mailbox_extra=mailbox_extra) as env:
        load_requests(env.dovecot, range(n))
        if attachment_mb:
            env.dovecot.append("INBOX", with_attachment(n, attachment_mb))
        started = time.perf_counter()
        # Through a tiny fresh interpreter: a child's ru_maxrss starts from the RSS of
        # the process it was forked from (Linux carries the old image's high-water mark
        # across exec), and this bench process is large after building the attachment.
        result = subprocess.run(
            [
                sys.executable,
                "-S",
                "-c",
                PEAK_OF_CHILD,
                *cli_command(env.config, "run", "--once", "--now", NOW),
            ],
            capture_output=True,
            text=True,
            env=cli_env(),
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"{label}: run --once failed: {result.stderr[-500:]}")
        peak = int(result.stdout.split()[-1])  # KiB on Linux
        print(f"{label:<40} peak RSS {peak / 1024:7.1f} MB   ({elapsed:.1f} s; {done(env, n)})")
        return peak


def with_attachment(n: int, megabytes: int) -> bytes:
    """A plain request carrying a large binary attachment (base64 on the wire)."""
    message = EmailMessage()
    base = request(n)
    parsed = message_from_bytes(base, policy=policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        message[name] = parsed[name]
    message.set_content("I'd like to attend on 10 December online please.\n\nResident\n")
    message.add_attachment(
        os.urandom(megabytes * 1_000_000),
        maintype="application",
        subtype="pdf",
        filename="agenda-with-my-notes.pdf",
    )
    return message.as_bytes()


def done(env: Servers, n: int) -> str:
    filed = len(env.dovecot.uids("Processed")) + len(env.dovecot.uids("Review"))
    return f"{len(env.smtpd.messages)} replies, {filed} filed"


if __name__ == "__main__":
    main()
