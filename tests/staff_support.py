"""Helpers for the staff-tool tests: configs, requests, a seeded store, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from processor.models import Registration
from processor.records import DecisionRecord
from processor.store import Store

REPO = Path(__file__).resolve().parents[1]
NOW = "2026-12-01T09:00:00+00:00"
COMMITTEE = "committee@council.example.gov.uk"
CONTACT = "democratic.services@council.example.gov.uk"
MEETING = "cdc-2026-12-10"

MEETINGS = f"""
[[meetings]]
id = "{MEETING}"
title = "Crime and Disorder Committee"
start = 2026-12-10T18:30:00
end = 2026-12-10T20:30:00
venue = "Council Chamber, Town Hall"
in_person_capacity = 10
online_capacity = 100
registration_closes = 2026-12-09T12:00:00
"""


def write_config(tmp_path: Path, mailbox: str, smtp: str, extra: str = "") -> Path:
    """A config file with the given [mailbox] and [smtp] bodies and the test meeting."""
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[mailbox]
{mailbox}

[smtp]
{smtp}

[committee]
name = "Crime and Disorder Committee"
address = "{COMMITTEE}"
contact = "{CONTACT}"

[storage]
path = "{tmp_path / "store.sqlite3"}"
{extra}
{MEETINGS}
"""
    )
    return config


def imap_mailbox(host: str, port: int, username: str) -> str:
    return (
        f'kind = "imap"\nhost = "{host}"\nport = {port}\nsecurity = "none"\n'
        f'username = "{username}"\npassword_env = "TEST_IMAP_PASSWORD"\ntimeout = 10.0'
    )


def smtp_server(host: str, port: int) -> str:
    return f'kind = "smtp"\nhost = "{host}"\nport = {port}\nsecurity = "none"\ntimeout = 10.0'


def offline_config(tmp_path: Path) -> Path:
    """A config needing no server: a Maildir that stays empty, replies as .eml files."""
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "maildir" / sub).mkdir(parents=True, exist_ok=True)
    return write_config(
        tmp_path,
        f'kind = "maildir"\npath = "{tmp_path / "maildir"}"',
        f'kind = "file"\npath = "{tmp_path / "outbox"}"',
    )


def request(n: int, sender: str, subject: str, body: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = COMMITTEE
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, n, tzinfo=UTC))
    message["Message-ID"] = f"<staff-{n}@residents.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def seed(
    store: Store,
    n: int,
    sender: str,
    *,
    name: str | None,
    outcome: str,
    reason: str = "Seeded for a test.",
    subject: str = "Attending",
    mode: str | None = None,
    party_size: int = 1,
    status: str | None = None,
    access_needs: tuple[str, ...] = (),
    meeting_id: str | None = MEETING,
) -> str:
    """One message through the real store API: stored raw, then decided."""
    raw = request(n, f"{name or ''} <{sender}>".strip(), subject, "Seeded.")
    message_id = f"<staff-{n}@residents.example>"
    store.store_raw(
        message_id=message_id,
        sha256=f"{n:064d}",
        received_at=datetime(2026, 11, 30, 10, n, tzinfo=UTC),
        raw=raw,
        raw_complete=True,
        size=len(raw),
        mailbox_key=str(n),
        sync_token="1",
        sender=sender,
        name=name,
        subject=subject,
    )
    registration = None
    if status is not None and mode is not None and meeting_id is not None:
        registration = Registration(
            meeting_id=meeting_id,
            sender=sender,
            name=name,
            mode=mode,  # type: ignore[arg-type]
            party_size=party_size,
            status=status,  # type: ignore[arg-type]
            access_needs=access_needs,
        )
    store.commit_decision(
        DecisionRecord(
            message_id=message_id,
            intent="attend",
            mode=mode,
            meeting_id=meeting_id,
            party_size=party_size if mode == "in_person" else None,
            name=name,
            access_needs=access_needs,
            outcome=outcome,
            reason=reason,
            rule="test.seed",
            evidence_json="[]",
            request_json=None,
            destination="review" if outcome == "referred" else "processed",
            registration=registration,
            outbox=(),
        )
    )
    return message_id


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEST_IMAP_PASSWORD": "secret", "PROCESSOR_FAULTS": ""}
    return subprocess.run(
        [sys.executable, "-m", "processor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
