"""Hostile input: arbitrary bytes and header values never make the pure pipeline raise."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.classify import classify
from processor.decide import decide
from processor.models import OUTCOMES, Decision, Meeting, Situation
from processor.reading import read_message
from processor.understand import understand

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)
START = datetime(2026, 12, 3, 18, 30, tzinfo=TZ)
MEETINGS = (
    Meeting("a", "Committee: Knife Crime", START, START + timedelta(hours=2), "Chamber", 40, 250),
    Meeting("b", "Committee: Safety Plan", START + timedelta(days=14), START, "Chamber", 40, 250),
)
OWN = "committee@council.example.gov.uk"
HEADERS = ("From", "Reply-To", "Subject", "Date", "Message-ID", "Content-Type",
           "Content-Transfer-Encoding", "Auto-Submitted", "Return-Path", "References")  # fmt: skip


def _pipeline(raw: bytes) -> Decision:
    email = read_message(raw)
    assert "\n" not in email.subject and "\r" not in email.subject
    assert all("\n" not in value for _, value in email.headers)
    classification = classify(email, OWN)
    request = None if classification.automated else understand(email, MEETINGS, TZ, NOW)
    situation = Situation(now=NOW, meetings=MEETINGS, registrations=(), occupancy={})
    decision = decide(email, classification, request, situation)
    assert decision.outcome in OUTCOMES
    return decision


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_it_survives_arbitrary_bytes(raw: bytes) -> None:
    _pipeline(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(HEADERS), st.text(max_size=200)), max_size=8),
    st.text(max_size=2000),
)
def test_it_survives_arbitrary_header_values_and_bodies(
    headers: list[tuple[str, str]], body: str
) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    raw = f"{head}\r\n{body}".encode("utf-8", errors="surrogatepass")
    _pipeline(raw)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=600))
def test_it_never_confirms_without_a_mode_and_meeting_in_the_text(body: str) -> None:
    raw = f"From: jo@example.com\r\nSubject: x\r\n\r\n{body}".encode("utf-8", errors="replace")
    decision = _pipeline(raw)
    if decision.outcome == "confirmed":
        email = read_message(raw)
        request = understand(email, MEETINGS, TZ, NOW)
        assert request.mode is not None
        assert request.meeting_id is not None  # two meetings are open: it must be named
