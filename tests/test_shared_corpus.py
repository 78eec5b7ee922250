"""Every public real-world fixture goes through the whole pure pipeline without an exception."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from processor.classify import classify
from processor.decide import decide
from processor.models import INTENTS, MODES, OUTCOMES, Meeting, Situation
from processor.reading import read_message
from processor.understand import understand

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)
MEETINGS = (
    Meeting(
        id="cdc-2026-12-03",
        title="Crime and Disorder Committee",
        start=datetime(2026, 12, 3, 18, 30, tzinfo=TZ),
        end=datetime(2026, 12, 3, 20, 30, tzinfo=TZ),
        venue="Council Chamber",
        in_person_capacity=40,
        online_capacity=250,
    ),
)
OWN = "committee@council.example.gov.uk"


def _fixtures(shared_dir: Path) -> list[Path]:
    corpus = shared_dir / "corpus"
    skip = {"LICENSE", "README.md"}
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.name not in skip)


def test_it_reads_decides_every_shared_fixture_without_crashing(shared_dir: Path) -> None:
    fixtures = _fixtures(shared_dir)
    assert len(fixtures) > 100  # the README promises 141 data files
    situation = Situation(now=NOW, meetings=MEETINGS, registrations=(), occupancy={})
    for path in fixtures:
        email = read_message(path.read_bytes())
        classification = classify(email, OWN)
        request = None if classification.automated else understand(email, MEETINGS, TZ, NOW)
        decision = decide(email, classification, request, situation)
        assert decision.outcome in OUTCOMES, path
        assert decision.reason, path
        assert email.message_id.startswith("<") and email.message_id.endswith(">"), path
        if request is not None:
            assert request.intent in INTENTS, path
            assert request.mode in (*MODES, None), path


def test_it_ignores_the_shared_bounces_and_list_mail(shared_dir: Path) -> None:
    data = shared_dir / "corpus" / "python-cpython" / "Lib" / "test" / "test_email" / "data"
    if not data.is_dir():
        pytest.skip("cpython fixtures absent")
    for name in ("msg_16.txt", "msg_25.txt", "msg_43.txt"):  # DSNs and a scanner bounce
        email = read_message((data / name).read_bytes())
        assert classify(email, OWN).automated, name


def test_it_strips_quotes_from_the_talon_iphone_reply(shared_dir: Path) -> None:
    replies = shared_dir / "corpus" / "mailgun-talon" / "tests" / "fixtures" / "standard_replies"
    if not replies.is_dir():
        pytest.skip("talon fixtures absent")
    email = read_message((replies / "iphone.eml").read_bytes())
    expected = (replies / "iphone_reply_text").read_text().strip()
    # Talon keeps the "Sent from my iPhone" footer in the reply; we split it off as the signature.
    assert f"{email.new_text}\n\n{email.signature}" == expected
    assert ">" not in email.new_text
