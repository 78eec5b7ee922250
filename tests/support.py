"""Helpers for tests that run the real CLI: configs for the real servers, requests, the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from tests.graphfake import GraphFake
from tests.plugins.dovecot import Dovecot
from tests.plugins.smtpd import SmtpServer

NOW = "2026-12-01T09:00:00+00:00"
COMMITTEE = "committee@council.example.gov.uk"
ORGANISER = "committee-organiser@council.example"

MEETING = """
[[meetings]]
id = "cdc-2026-12-10"
title = "Crime and Disorder Committee"
start = 2026-12-10T18:30:00
end = 2026-12-10T20:30:00
venue = "Council Chamber, Town Hall"
in_person_capacity = {in_person}
online_capacity = {online}
registration_closes = 2026-12-09T12:00:00
"""


def write_config(
    tmp_path: Path,
    dovecot: Dovecot,
    smtpd: SmtpServer,
    graph: GraphFake | None = None,
    *,
    mailbox_extra: str = "",
    in_person: int = 10,
    online: int = 100,
) -> Path:
    """A config for the real Dovecot and aiosmtpd, and the Graph fake when given."""
    graph_section = ""
    if graph is not None:
        secret = tmp_path / "graph-secret"
        secret.write_text(graph.client_secret)
        graph_section = f"""
[graph]
enabled = true
tenant_id = "{graph.tenant}"
client_id = "{graph.client_id}"
client_secret_file = "{secret}"
authority = "{graph.authority}"
base_url = "{graph.base_url}"
organiser = "{ORGANISER}"
ca_file = "{graph.ca_file}"
timeout = 10.0
max_retry_after = 2.0
"""
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[mailbox]
kind = "imap"
host = "{dovecot.host}"
port = {dovecot.port}
security = "none"
username = "{dovecot.username}"
password_env = "TEST_IMAP_PASSWORD"
timeout = 10.0
{mailbox_extra}

[smtp]
kind = "smtp"
host = "{smtpd.host}"
port = {smtpd.port}
security = "none"
timeout = 10.0
{graph_section}
[committee]
name = "Crime and Disorder Committee"
address = "{COMMITTEE}"
contact = "democratic.services@council.example.gov.uk"

[storage]
path = "{tmp_path / "store.sqlite3"}"

[worker]
max_attempts = 50
{MEETING.format(in_person=in_person, online=online)}
"""
    )
    return config


def request(n: int, sender: str, subject: str, body: str, **headers: str) -> bytes:
    """A resident's email, Message-ID <e2e-N@residents.example>."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = COMMITTEE
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, n % 60, tzinfo=UTC))
    message["Message-ID"] = f"<e2e-{n}@residents.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def online_request(n: int) -> bytes:
    """Resident n asks for the Teams link (Message-ID <e2e-n@residents.example>)."""
    return request(
        n,
        f"Resident {n} <resident{n}@residents.example>",
        "Committee",
        f"Please send me the Teams link for the 10 December meeting.\n\nResident {n}",
    )


def start_cli(config: Path, *args: str, faults: str = "", **popen: Any) -> subprocess.Popen[str]:
    """The CLI running in the background; its stderr kept for assertion messages."""
    options: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    return subprocess.Popen(
        cli_command(config, *args), env=cli_env(faults), text=True, **{**options, **popen}
    )


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` came true within `seconds` (looked at every 20 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def cli_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "processor", "--config", str(config), *args]


def cli_env(faults: str = "") -> dict[str, str]:
    return {**os.environ, "TEST_IMAP_PASSWORD": "secret", "PROCESSOR_FAULTS": faults}


def run_cli(config: Path, *args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(config, *args),
        capture_output=True,
        text=True,
        timeout=180,
        env=cli_env(faults),
    )


def staff_log(config: Path) -> dict[str, dict[str, Any]]:
    """The log as JSON, by Message-ID."""
    result = run_cli(config, "log", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["message_id"]: row for row in json.loads(result.stdout)}
