"""Fuzzing the whole message path: any bytes in the mailbox get an outcome, none crash a cycle."""

from __future__ import annotations

import mailbox
import os
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.config import parse_config
from processor.models import OUTCOMES
from processor.pipeline import run_cycle
from processor.services import build_services

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEADER_NAMES = st.sampled_from(
    [
        "From",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Auto-Submitted",
        "List-Id",
        "Return-Path",
    ]
)
HEADER_VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
BODIES = st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8"))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Mostly mail-shaped: headers (some hostile) and a body; sometimes raw garbage."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8))
    lines = [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + draw(BODIES)


def run_mailbox(root: Path, raws: list[bytes]) -> list[str]:
    box = mailbox.Maildir(root / "maildir", create=True)
    for raw in raws:
        box.add(raw)
    config = parse_config(
        {
            "mailbox": {"kind": "maildir", "path": "maildir"},
            "smtp": {"kind": "file", "path": "sent"},
            "committee": {"name": "Committee", "address": "committee@council.example.gov.uk"},
            "meetings": [
                {
                    "id": "dec",
                    "title": "Committee",
                    "start": "2026-12-10T18:30:00",
                    "end": "2026-12-10T20:30:00",
                    "in_person_capacity": 3,
                }
            ],
        },
        root / "config.toml",
    )
    svc = build_services(config, clock=lambda: NOW)
    try:
        report = run_cycle(svc)
    finally:
        svc.mailbox.close()
        svc.store.close()
    assert report.filed == report.seen
    db = sqlite3.connect(root / "attendance.sqlite3")
    return [row[0] for row in db.execute("SELECT outcome FROM messages")]


# FUZZ_EXAMPLES=5000 for a long run; the default keeps `make test` quick.
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(messages(), min_size=1, max_size=4))
def test_it_gives_every_message_an_outcome_whatever_the_bytes(raws: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        outcomes = run_mailbox(Path(folder), raws)
    # Messages may share a (missing or repeated) Message-ID: one row per distinct message.
    assert 1 <= len(outcomes) <= len(raws)
    assert all(outcome in OUTCOMES for outcome in outcomes)
