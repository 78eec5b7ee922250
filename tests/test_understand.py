"""Understanding free text: the labelled corpus end to end, and one test per rule."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from processor.classify import classify
from processor.decide import decide
from processor.models import Decision, InboundEmail, Meeting, Request, Situation
from processor.reading import read_message
from processor.understand import understand

CORPUS = Path(__file__).parent / "corpus"
LABELS: dict[str, Any] = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
TZ = ZoneInfo(LABELS["timezone"])
NOW = datetime.fromisoformat(LABELS["now"])
OWN = LABELS["committee"]["address"]


def _meeting(row: dict[str, Any]) -> Meeting:
    closes = row.get("registration_closes")
    return Meeting(
        id=row["id"],
        title=row["title"],
        start=datetime.fromisoformat(row["start"]).replace(tzinfo=TZ),
        end=datetime.fromisoformat(row["end"]).replace(tzinfo=TZ),
        venue=row["venue"],
        in_person_capacity=row["in_person_capacity"],
        online_capacity=row["online_capacity"],
        registration_closes=datetime.fromisoformat(closes).replace(tzinfo=TZ) if closes else None,
    )


MEETINGS = tuple(_meeting(row) for row in LABELS["meetings"])


@dataclass(frozen=True)
class Outcome:
    email: InboundEmail
    request: Request | None
    decision: Decision


def run(raw: bytes, now: datetime = NOW) -> Outcome:
    email = read_message(raw)
    classification = classify(email, OWN)
    request = None if classification.automated else understand(email, MEETINGS, TZ, now)
    situation = Situation(now=now, meetings=MEETINGS, registrations=(), occupancy={})
    return Outcome(email, request, decide(email, classification, request, situation))


def text(
    body: str, subject: str = "Meeting", sender: str = "Jo Bloggs <jo@example.com>"
) -> Request:
    raw = f"From: {sender}\nSubject: {subject}\nDate: Thu, 26 Nov 2026 09:00:00 +0000\n\n{body}\n"
    email = read_message(raw.encode())
    return understand(email, MEETINGS, TZ, NOW)


@pytest.mark.parametrize("name", sorted(LABELS["messages"]))
def test_it_understands_each_labelled_corpus_message(name: str) -> None:
    expected = LABELS["messages"][name]
    got = run((CORPUS / name).read_bytes())
    actual = {
        "intent": got.request.intent if got.request else "automated",
        "mode": got.request.mode if got.request else None,
        "meeting": got.decision.meeting_id,
        "name": got.request.name if got.request else None,
        "party_size": got.request.party_size if got.request else None,
        "outcome": got.decision.outcome,
    }
    wanted = {key: expected[key] for key in actual}
    assert actual == wanted, (got.request, got.decision, got.email.new_text)


def test_it_has_at_least_sixty_labelled_messages() -> None:
    emls = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(emls) >= 60
    assert emls == sorted(LABELS["messages"])
