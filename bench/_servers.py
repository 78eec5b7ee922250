"""Start-up helpers shared by the benches: real Dovecot, aiosmtpd, the Graph fake, a config.

The benches reuse the test servers as plain classes. The Graph fake validates bodies
against the public schema in the shared folder (PROCESSOR_SHARED_DIR, default
<repo>/../shared); without it the benches run with Graph disabled and say so.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import os  # noqa: E402

import trustme  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from tests.graphfake import GraphFake, Validator  # noqa: E402
from tests.plugins.dovecot import Dovecot, build_dovecot  # noqa: E402
from tests.plugins.smtpd import SmtpServer  # noqa: E402
from tests.support import COMMITTEE, NOW, cli_command, cli_env, write_config  # noqa: E402

SHARED = Path(os.environ.get("PROCESSOR_SHARED_DIR", REPO.parent / "shared"))
LOAD_BATCH = 200  # messages per MULTIAPPEND (RFC 3502) when filling the inbox

__all__ = [
    "NOW",
    "Servers",
    "cli_command",
    "cli_env",
    "load_requests",
    "request",
    "run_once",
    "servers",
]


@dataclass
class Servers:
    """The running servers for one bench, its working dir and the config file."""

    dir: Path
    dovecot: Dovecot
    smtpd: SmtpServer
    graph: GraphFake | None
    config: Path

    def imap(self) -> IMAPClient:
        return self.dovecot.client()


def request(n: int, body: str | None = None) -> bytes:
    """A simple online request from resident N (distinct senders: no reply budget hit)."""
    message = EmailMessage()
    message["From"] = f"Resident {n} <resident{n}@residents.example>"
    message["To"] = COMMITTEE
    message["Subject"] = "Committee meeting"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, n % 60, tzinfo=UTC))
    message["Message-ID"] = f"<bench-{n}@residents.example>"
    message.set_content(
        body or f"I'd like to attend on 10 December online please.\n\nResident {n}\n"
    )
    return message.as_bytes()


def load_requests(server: Dovecot, numbers: range, folder: str = "INBOX") -> None:
    """APPEND requests in MULTIAPPEND batches over one connection (untimed set-up)."""
    client = server.client()
    try:
        batch: list[bytes] = []
        for n in numbers:
            batch.append(request(n))
            if len(batch) == LOAD_BATCH:
                client.multiappend(folder, batch)
                batch = []
        if batch:
            client.multiappend(folder, batch)
    finally:
        client.logout()


def _graph_fake(root: Path) -> GraphFake | None:
    types = SHARED / "graph" / "v1.0-types.json"
    zones_file = SHARED / "graph" / "windows-timezones.json"
    if not (types.is_file() and zones_file.is_file()):
        print(f"note: no Graph schema under {SHARED} (set PROCESSOR_SHARED_DIR): graph disabled")
        return None
    schema: dict[str, Any] = json.loads(types.read_text(encoding="utf-8"))
    zones: dict[str, str] = json.loads(zones_file.read_text(encoding="utf-8"))["windowsToIana"]
    ca = trustme.CA()
    ca_file = root / "graph-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fake = GraphFake(Validator(schema, zones), zones, ca, ca_file)
    fake.start()
    return fake


# Each run's files are removed when the bench exits, not when the run ends: without a
# journal, ext4 will not reuse an inode freed in the last 60 s, so every new file scans
# past them (fs/ext4/ialloc.c, recently_deleted), and each run would pay, in Dovecot's
# Sent filing, for the one removed before it. bench/README.md has the figures.
_REMOVE_AT_EXIT: list[Path] = []


@atexit.register
def _remove_runs() -> None:
    for path in _REMOVE_AT_EXIT:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def servers(
    *, graph: bool = True, mailbox_extra: str = "", online: int = 100_000
) -> Iterator[Servers]:
    """Dovecot, aiosmtpd and (when the schema is there) the Graph fake, with a config."""
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    dovecot = build_dovecot()
    smtpd = SmtpServer()
    smtpd.start()
    fake = _graph_fake(root) if graph else None
    try:
        config = write_config(
            root, dovecot, smtpd, fake, mailbox_extra=mailbox_extra, online=online
        )
        yield Servers(root, dovecot, smtpd, fake, config)
    finally:
        if fake is not None:
            fake.stop()
        smtpd.stop()
        dovecot.stop()
        _REMOVE_AT_EXIT.extend([dovecot.dir, root])


def run_once(
    env: Servers,
    *,
    profile_to: Path | None = None,
    checkout: Path | None = None,
    cwd: Path | None = None,
) -> tuple[float, str]:
    """`run --once` over the backlog in `env`: wall seconds and the worker's log.

    `checkout` runs that checkout's `processor` (on PYTHONPATH; give a `cwd` outside
    any checkout, or `python -m` loads the one there); `profile_to` runs it under cProfile.
    """
    command = cli_command(env.config, "run", "--once", "--now", NOW)
    if profile_to is not None:
        command[1:3] = ["-m", "cProfile", "-o", str(profile_to), "-m", "processor"]
    run_env = cli_env() if checkout is None else {**cli_env(), "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env=run_env, cwd=cwd, timeout=900
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        where = "" if checkout is None else f" of {checkout}"
        sys.exit(f"run --once{where} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed, result.stderr
